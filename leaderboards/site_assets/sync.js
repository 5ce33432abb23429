// gsbench leaderboard site: the videos of one test sequence play in sync.
// In each .sync-group the video marked data-master (the ground truth, which carries the audio) drives
// the others: play, pause, seek and rate are mirrored, and drift above one frame is corrected.
// The group's own bar (play/pause, seek slider, time) replaces the native controls once this runs.
"use strict";
(function () {
  function fmt(seconds) {
    return Number.isFinite(seconds) ? seconds.toFixed(2) + " s" : "–";
  }

  function setUp(group) {
    const master = group.querySelector("video[data-master]");
    if (!master) return;
    const followers = Array.from(group.querySelectorAll("video")).filter(function (v) { return v !== master; });
    const bar = group.querySelector(".sync-bar");
    const button = bar.querySelector("button");
    const slider = bar.querySelector("input[type=range]");
    const clock = bar.querySelector("output");
    const tolerance = 0.04;  // one frame at 25 fps
    group.querySelectorAll("video").forEach(function (v) { v.controls = false; });
    bar.hidden = false;
    followers.forEach(function (v) { v.muted = true; });

    function align() {
      followers.forEach(function (v) {
        if (Math.abs(v.currentTime - master.currentTime) > tolerance) v.currentTime = master.currentTime;
      });
    }
    function show() {
      button.textContent = master.paused ? "▶ play" : "❚❚ pause";
      if (Number.isFinite(master.duration)) slider.max = master.duration;
      slider.value = master.currentTime;
      clock.textContent = fmt(master.currentTime) + " / " + fmt(master.duration);
    }
    master.addEventListener("play", function () {
      align();
      followers.forEach(function (v) { v.play().catch(function () {}); });
      show();
    });
    master.addEventListener("pause", function () {
      followers.forEach(function (v) { v.pause(); });
      align();
      show();
    });
    master.addEventListener("seeking", align);
    master.addEventListener("seeked", function () { align(); show(); });
    master.addEventListener("ratechange", function () {
      followers.forEach(function (v) { v.playbackRate = master.playbackRate; });
    });
    master.addEventListener("timeupdate", function () { align(); show(); });
    master.addEventListener("loadedmetadata", show);
    button.addEventListener("click", function () {
      if (master.paused) master.play().catch(function () {});
      else master.pause();
    });
    slider.addEventListener("input", function () { master.currentTime = parseFloat(slider.value); });
    group.querySelectorAll("video").forEach(function (v) {
      v.addEventListener("click", function () { button.click(); });
    });
    show();
  }

  function setUpAll() { document.querySelectorAll(".sync-group").forEach(setUp); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpAll);
  else setUpAll();
})();
