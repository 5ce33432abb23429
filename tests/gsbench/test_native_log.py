"""quiet_native_stderr hides native libraries' routine lines and passes the rest through."""

import os

import pytest

from gsbench.native_log import quiet_native_stderr


def test_routine_lines_are_hidden_and_errors_kept(capfd):
    with quiet_native_stderr():
        os.write(2, b"W0000 00:00:1795817453.239886   30144 inference_feedback_manager.cc:114] Feedback\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 00:00:1795817453.280320   30145 calculator.cc:1] graph failed\n")
        os.write(1, b"stdout untouched\n")
    out, err = capfd.readouterr()
    assert "Feedback" not in err
    assert "XNNPACK" not in err
    assert "E0000 00:00:1795817453.280320   30145 calculator.cc:1] graph failed\n" in err
    assert out == "stdout untouched\n"


def test_stderr_is_restored_after_an_exception(capfd):
    with pytest.raises(RuntimeError), quiet_native_stderr():
        os.write(2, b"kept line\n")
        raise RuntimeError("boom")
    os.write(2, b"after\n")
    _, err = capfd.readouterr()
    assert err == "kept line\nafter\n"


def test_colmap_dated_and_coloured_glog_lines_are_routine(capfd):
    with quiet_native_stderr():
        os.write(2, b"I20261128 00:17:18.464602 139852430039936 bundle_adjustment.cc:46] === Global ===\n")
        os.write(2, b"\x1b[m\x1b[0;33mW20261128 00:15:54.777545 1398 lm_strategy.cc:123] retry\n")
        os.write(2, b"E20261128 00:15:54.777545 1398 mapper.cc:1] no initial pair\n")
    _, err = capfd.readouterr()
    assert err == "E20261128 00:15:54.777545 1398 mapper.cc:1] no initial pair\n"
