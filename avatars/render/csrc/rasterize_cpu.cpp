// Tile-based front-to-back alpha compositing of projected 2D Gaussians on the CPU (forward + backward).
//
// The per-pixel rule is the same as 3DGS / gsplat (rasterize_to_pixels): splats sorted by depth per
// 16x16 tile, alpha = min(0.99, opacity * exp(power)), splats with alpha < 1/255 skipped, compositing
// stops before the transmittance would reach 1e-4, and the backward walks each pixel's splats back to
// front recovering T by division. Tiles are distributed over threads (run_workers: an atomic tile counter; every
// thread owns its tile buffers and writes whole tile rows of the outputs, so no false sharing).
// Backward writes per (tile, splat) entry, so no atomics are needed and memory is linear in the
// number of tile-splat entries; a final pass, split over the threads by splat, sums each splat's entries in
// tile order (lists kept by the binning), so the result has the same bits for any thread count. Binning
// (each splat's tiles, its record) is split over the threads too; only the prefix sums, the depth sort (a
// radix sort) and the scatter into the tiles' lists run on one thread.
//
// Work skipped without changing any result (issue 22):
//   - binning keeps a (tile, splat) entry only if the splat's alpha can reach 1/255 somewhere in the tile
//     (maximum of the Gaussian over the tile's pixel centres, not just its bounding box);
//   - the forward records, per entry, the box of pixels it actually composited into ("hit box", 4 bytes);
//     the backward visits only those pixels and skips entries that composited nothing;
//   - float32 on an x86-64 CPU with AVX2 + FMA (checked at run time) runs 8 pixels per instruction
//     (the *_simd functions); float64, other CPUs and tile sizes not a multiple of 8 run the scalar loops.
//     The SIMD path evaluates exp with a polynomial (~1 ulp), the same function in forward and backward,
//     so the two passes agree exactly on which (pixel, splat) pairs composited.

// Only light ATen headers and an op registration (no pybind11, no torch/extension.h): the JIT build takes
// ~15 s of CPU instead of ~60 s. Python reaches the ops as torch.ops.gsbench_rasterize.*.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GSBENCH_HAVE_X86_SIMD 1
#define GSBENCH_AVX2 __attribute__((target("avx2,fma")))
#else
#define GSBENCH_HAVE_X86_SIMD 0
#endif

namespace {

constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kAlphaMax = 0.99;
constexpr double kTransmittanceMin = 1e-4;
constexpr double kFovMargin = 0.3;  // as projection.FOV_MARGIN
// Grad slots per entry before the features: mean x, mean y, conic a, b, c, opacity, |mean x|, |mean y|.
constexpr int kGeomSlots = 8;

constexpr int64_t kProjectChunk = 2048;  // Gaussians per job of the projection

// Below this many tile-splat entries a second thread costs more (start-up) than it saves.
inline int num_threads_for(int64_t entries) { return entries < 4096 ? 1 : at::get_num_threads(); }

// Runs worker() on n_threads threads (this one included) and waits for them. Workers take jobs from an
// atomic counter, so a thread the OS deschedules (on a machine shared with other work) leaves its share
// to the others, and the wait at the end sleeps in join() instead of spinning as OpenMP's barrier does
// (measured on the loaded 2-core machine: OpenMP's spinning made 2 threads 3-6x slower than one).
// Each thread allocates its own tile buffers, so no two threads write to one cache line except at the
// rare tile borders of the outputs.
template <typename Worker>
void run_workers(int n_threads, Worker&& worker) {
  if (n_threads <= 1) {
    worker();
    return;
  }
  std::vector<std::thread> helpers;
  helpers.reserve(n_threads - 1);
  for (int t = 1; t < n_threads; ++t) helpers.emplace_back([&worker] { worker(); });
  worker();
  for (auto& helper : helpers) helper.join();
}

// SIMD switch (tests compare the two paths; GSBENCH_RASTERIZE_SIMD=0 forces the scalar loops).
std::atomic<bool> g_simd_enabled{true};

bool cpu_has_avx2_fma() {
#if GSBENCH_HAVE_X86_SIMD
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

template <typename scalar_t>
bool use_simd(int tile_size) {
  return std::is_same<scalar_t, float>::value && tile_size % 8 == 0 && tile_size <= 32 && g_simd_enabled.load() &&
         cpu_has_avx2_fma();
}

struct TileBins {
  at::Tensor tile_offsets;   // [C * tiles + 1] int64
  at::Tensor gauss_ids;      // [E] int32, depth-sorted within each tile
  at::Tensor splat_offsets;  // [C * N + 1] int64: splat g's tiles are splat_entries[splat_offsets[g]:splat_offsets[g + 1]]
  at::Tensor splat_entries;  // [E] int32: the entry (index into gauss_ids) of each, in increasing tile order
  at::Tensor splat_records;  // [C * N, R] each binned splat's parameters in one cache line or few (kRec*)
};

// A splat's record: what compositing reads of it, in one place (the kernels visit the splats of a tile in
// depth order, i.e. in random order of their index; scattered over five arrays each visit cost ~6 cache
// misses). Slots of scalar_t; the pixel rectangle's bounds are int32 stored in the first 4 bytes of a slot.
enum RecordSlot : int {
  kRecMeanX,
  kRecMeanY,
  kRecConicA,
  kRecConicB,
  kRecConicC,
  kRecOpacity,
  kRecMinPower,  // min_power_of(opacity)
  kRecX0,        // pixels whose centre lies in mean ± (extent + 0.01), image coordinates (int32)
  kRecX1,
  kRecY0,
  kRecY1,
  kRecFeatures,  // K features follow
};
// Slots per record: whole 64-byte cache lines (16 floats: K <= 5 fits one line).
template <typename scalar_t>
inline int64_t record_stride(int64_t K) {
  const int64_t per_line = 64 / sizeof(scalar_t);
  return (kRecFeatures + K + per_line - 1) / per_line * per_line;
}
template <typename scalar_t>
inline void store_int(scalar_t* slot, int32_t value) {
  std::memcpy(slot, &value, sizeof value);
}
template <typename scalar_t>
inline int32_t load_int(const scalar_t* slot) {
  int32_t value;
  std::memcpy(&value, slot, sizeof value);
  return value;
}

// Hit box of one entry: tile-local inclusive pixel bounds of the pixels it composited into.
struct HitBox {
  uint8_t x0, x1, y0, y1;
};
constexpr HitBox kEmptyBox{255, 0, 255, 0};
inline void grow(HitBox& b, int x0, int x1, int y) {
  b.x0 = (uint8_t)std::min<int>(b.x0, x0);
  b.x1 = (uint8_t)std::max<int>(b.x1, x1);
  b.y0 = (uint8_t)std::min<int>(b.y0, y);
  b.y1 = (uint8_t)std::max<int>(b.y1, y);
}

// alpha >= 1/255 needs power >= -log(255 * opacity); the margin keeps this pre-test loose so the exact
// alpha test decides, as in the reference.
inline double min_power_of(double opacity) { return -std::log(opacity / kAlphaThreshold) - 1e-3; }

// Tiles touched by the box [mean - extent, mean + extent]; pixel j has its centre at j + 0.5, and
// floor(.) of both ends is conservative for pixel centres inside the box.
template <typename scalar_t>
inline bool tile_rect(const scalar_t* mean, const scalar_t* extent, int tile_size, int tiles_x, int tiles_y,
                      int& x0, int& x1, int& y0, int& y1) {
  const double ex = extent[0], ey = extent[1];
  if (!(ex > 0.0) || !(ey > 0.0)) return false;
  x0 = std::max(0, (int)std::floor((mean[0] - ex) / tile_size));
  x1 = std::min(tiles_x - 1, (int)std::floor((mean[0] + ex) / tile_size));
  y0 = std::max(0, (int)std::floor((mean[1] - ey) / tile_size));
  y1 = std::min(tiles_y - 1, (int)std::floor((mean[1] + ey) / tile_size));
  return x0 <= x1 && y0 <= y1;
}

// Largest power = -1/2 d^T conic d over the pixel centres' rectangle [xl, xh] x [yl, yh] (d = mean - p):
// 0 if the mean is inside, else the best point on one of the four edges (a concave quadratic along each).
inline double max_power_in_rect(double mx, double my, double a, double b, double c, double xl, double xh,
                                double yl, double yh) {
  if (mx >= xl && mx <= xh && my >= yl && my <= yh) return 0.0;
  auto power = [&](double dx, double dy) { return -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy; };
  double best = -std::numeric_limits<double>::infinity();
  const double dx_lo = mx - xh, dx_hi = mx - xl, dy_lo = my - yh, dy_hi = my - yl;
  for (double dx : {dx_lo, dx_hi}) {  // vertical edges: maximise over dy
    const double dy = c > 0 ? std::min(std::max(-b * dx / c, dy_lo), dy_hi) : dy_lo;
    best = std::max(best, power(dx, dy));
  }
  for (double dy : {dy_lo, dy_hi}) {  // horizontal edges: maximise over dx
    const double dx = a > 0 ? std::min(std::max(-b * dy / a, dx_lo), dx_hi) : dx_lo;
    best = std::max(best, power(dx, dy));
  }
  return best;
}

// Calls visit(tile) for each tile of camera-local index ty * tiles_x + tx where the splat's alpha can
// reach 1/255 at some pixel centre (with a 2e-3 margin on the power: the kernels' exact tests decide).
// limit: min_power_of(opacity) - 1e-3.
template <typename scalar_t, typename Visit>
inline void for_each_tile(const scalar_t* mean, const scalar_t* extent, const scalar_t* conic, double limit,
                          int tile_size, int tiles_x, int tiles_y, int width, int height,
                          Visit&& visit) {
  int x0, x1, y0, y1;
  if (!tile_rect(mean, extent, tile_size, tiles_x, tiles_y, x0, x1, y0, y1)) return;
  const bool single = x0 == x1 && y0 == y1;
  for (int ty = y0; ty <= y1; ++ty)
    for (int tx = x0; tx <= x1; ++tx) {
      if (!single) {
        const double xl = tx * tile_size + 0.5, xh = std::min((tx + 1) * tile_size, width) - 0.5;
        const double yl = ty * tile_size + 0.5, yh = std::min((ty + 1) * tile_size, height) - 0.5;
        if (max_power_in_rect(mean[0], mean[1], conic[0], conic[1], conic[2], xl, xh, yl, yh) < limit) continue;
      }
      visit(ty * tiles_x + tx);
    }
}

// Order-preserving unsigned key of a depth: a < b as floats <=> key(a) < key(b); -0 and +0 get one key, as
// they compare equal. (Splats with a NaN depth are culled by the projection and never binned.)
inline uint32_t depth_key(float depth) {
  uint32_t bits;
  const float d = depth + 0.0f;  // -0 -> +0
  std::memcpy(&bits, &d, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
inline uint64_t depth_key(double depth) {
  uint64_t bits;
  const double d = depth + 0.0;
  std::memcpy(&bits, &d, sizeof bits);
  return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
}

// Stable LSD radix sort of values by keys, one byte per pass (passes where every key has the same byte are
// skipped): with values given in increasing splat index, the order of std::sort on (depth, index) pairs.
template <typename Key>
void radix_sort_stable(std::vector<Key>& keys, std::vector<int32_t>& values) {
  const size_t n = keys.size();
  std::vector<Key> keys_tmp(n);
  std::vector<int32_t> values_tmp(n);
  for (unsigned shift = 0; shift < 8 * sizeof(Key); shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & 0xff) + 1];
    if (n == 0 || count[((keys[0] >> shift) & 0xff) + 1] == n) continue;
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (size_t i = 0; i < n; ++i) {
      const size_t to = count[(keys[i] >> shift) & 0xff]++;
      keys_tmp[to] = keys[i];
      values_tmp[to] = values[i];
    }
    keys.swap(keys_tmp);
    values.swap(values_tmp);
  }
}

constexpr int64_t kBinChunk = 1024;  // splats per job of the binning

// Each splat's tiles are found once, in parallel (kept in one flat list in splat order, so the layout does
// not depend on the thread count); per camera the splats that touch any tile are sorted by (depth, index)
// (what a stable sort by depth gives) and written to their tiles' lists. With_entries: also, for each
// (splat, tile), the position of its entry (the backward's per-splat reduction reads these).
template <typename scalar_t>
TileBins bin_gaussians(const at::Tensor& means2d, const at::Tensor& extents, const at::Tensor& conics,
                       const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& depths,
                       int tile_size, int tiles_x, int tiles_y, int width, int height, bool with_entries) {
  const int64_t C = means2d.size(0), N = means2d.size(1), T = (int64_t)tiles_x * tiles_y, CN = C * N;
  const int64_t K = features.size(2), R = record_stride<scalar_t>(K);
  const scalar_t* feat = features.data_ptr<scalar_t>();
  const scalar_t* m = means2d.data_ptr<scalar_t>();
  const scalar_t* e = extents.data_ptr<scalar_t>();
  const scalar_t* co = conics.data_ptr<scalar_t>();
  const scalar_t* op = opacities.data_ptr<scalar_t>();
  const scalar_t* d = depths.data_ptr<scalar_t>();
  TileBins bins;
  bins.splat_records = at::empty({CN, R}, means2d.options());
  bins.splat_offsets = at::empty({CN + 1}, means2d.options().dtype(at::kLong));
  scalar_t* records = bins.splat_records.data_ptr<scalar_t>();
  int64_t* splat_first = bins.splat_offsets.data_ptr<int64_t>();
  const int64_t n_chunks = (CN + kBinChunk - 1) / kBinChunk;
  std::vector<std::vector<int32_t>> chunk_tiles(n_chunks);
  std::atomic<int64_t> next_chunk{0};
  run_workers(CN < 4 * kBinChunk ? 1 : at::get_num_threads(), [&] {
    for (int64_t chunk; (chunk = next_chunk.fetch_add(1)) < n_chunks;) {
      std::vector<int32_t>& tiles = chunk_tiles[chunk];
      for (int64_t g = chunk * kBinChunk; g < std::min(CN, (chunk + 1) * kBinChunk); ++g) {
        const double min_power = min_power_of((double)op[g]);
        const size_t before = tiles.size();
        for_each_tile(m + 2 * g, e + 2 * g, co + 3 * g, min_power - 1e-3, tile_size, tiles_x, tiles_y, width,
                      height, [&](int t) { tiles.push_back(t); });
        splat_first[g + 1] = (int64_t)(tiles.size() - before);  // a count until the prefix sum below
        if (tiles.size() == before) continue;  // never composited: no record
        scalar_t* rec = records + g * R;
        rec[kRecMeanX] = m[2 * g];
        rec[kRecMeanY] = m[2 * g + 1];
        rec[kRecConicA] = co[3 * g];
        rec[kRecConicB] = co[3 * g + 1];
        rec[kRecConicC] = co[3 * g + 2];
        rec[kRecOpacity] = op[g];
        rec[kRecMinPower] = (scalar_t)min_power;
        // The rectangle gets a 0.01 px margin for the same reason as min_power (it only saves work).
        const double ex = e[2 * g] + 0.01, ey = e[2 * g + 1] + 0.01;
        store_int(rec + kRecX0, (int)std::ceil(m[2 * g] - ex - 0.5));
        store_int(rec + kRecX1, (int)std::floor(m[2 * g] + ex - 0.5));
        store_int(rec + kRecY0, (int)std::ceil(m[2 * g + 1] - ey - 0.5));
        store_int(rec + kRecY1, (int)std::floor(m[2 * g + 1] + ey - 0.5));
        std::copy(feat + g * K, feat + (g + 1) * K, rec + kRecFeatures);
      }
    }
  });
  splat_first[0] = 0;
  for (int64_t g = 0; g < CN; ++g) splat_first[g + 1] += splat_first[g];
  const int64_t E = splat_first[CN];
  TORCH_CHECK(E < (int64_t)INT32_MAX, "rasterize_cpu: too many tile-splat entries");
  std::vector<int32_t> tiles(E);
  for (int64_t chunk = 0; chunk < n_chunks; ++chunk)
    std::copy(chunk_tiles[chunk].begin(), chunk_tiles[chunk].end(), tiles.begin() + splat_first[chunk * kBinChunk]);
  bins.tile_offsets = at::zeros({C * T + 1}, means2d.options().dtype(at::kLong));
  int64_t* counts = bins.tile_offsets.data_ptr<int64_t>();
  for (int64_t g = 0; g < CN; ++g)
    for (int64_t j = splat_first[g]; j < splat_first[g + 1]; ++j) counts[(g / N) * T + tiles[j] + 1] += 1;
  std::partial_sum(counts, counts + C * T + 1, counts);
  bins.gauss_ids = at::empty({E}, means2d.options().dtype(at::kInt));
  bins.splat_entries = at::empty({with_entries ? E : 0}, means2d.options().dtype(at::kInt));
  int32_t* ids = bins.gauss_ids.data_ptr<int32_t>();
  int32_t* entries = with_entries ? bins.splat_entries.data_ptr<int32_t>() : nullptr;
  std::vector<int64_t> cursor(counts, counts + C * T);
  using Key = decltype(depth_key(scalar_t(0)));
  std::vector<Key> keys;
  std::vector<int32_t> order;
  for (int64_t c = 0; c < C; ++c) {
    keys.clear();
    order.clear();
    for (int64_t n = 0; n < N; ++n) {
      if (splat_first[c * N + n + 1] == splat_first[c * N + n]) continue;
      keys.push_back(depth_key(d[c * N + n]));
      order.push_back((int32_t)n);
    }
    radix_sort_stable(keys, order);
    int64_t* cur = cursor.data() + c * T;
    for (const int32_t n : order) {
      for (int64_t j = splat_first[c * N + n]; j < splat_first[c * N + n + 1]; ++j) {
        const int64_t at = cur[tiles[j]]++;
        ids[at] = n;
        if (entries) entries[j] = (int32_t)at;
      }
    }
  }
  return bins;
}

// Per-tile copy of the splat parameters, contiguous in depth order, with each splat's pixel rectangle
// clipped to the tile: pixels whose centre lies in mean ± extent (outside it alpha < 1/255).
template <typename scalar_t>
struct TileSplats {
  std::vector<scalar_t> mx, my, ca, cb, cc, op, min_power;
  std::vector<int32_t> x0, x1, y0, y1;  // inclusive pixel bounds, tile-local
  void load(const int32_t* ids, int64_t count, const scalar_t* records, int64_t R, int tile_x0, int tile_y0,
            int tile_w, int tile_h) {
    for (auto* v : {&mx, &my, &ca, &cb, &cc, &op, &min_power}) v->resize(count);
    for (auto* v : {&x0, &x1, &y0, &y1}) v->resize(count);
    for (int64_t i = 0; i < count; ++i) {
      const scalar_t* rec = records + ids[i] * R;
      mx[i] = rec[kRecMeanX]; my[i] = rec[kRecMeanY];
      ca[i] = rec[kRecConicA]; cb[i] = rec[kRecConicB]; cc[i] = rec[kRecConicC];
      op[i] = rec[kRecOpacity];
      min_power[i] = rec[kRecMinPower];
      x0[i] = std::max(0, load_int(rec + kRecX0) - tile_x0);
      x1[i] = std::min(tile_w - 1, load_int(rec + kRecX1) - tile_x0);
      y0[i] = std::max(0, load_int(rec + kRecY0) - tile_y0);
      y1[i] = std::min(tile_h - 1, load_int(rec + kRecY1) - tile_y0);
    }
  }
};

struct TileGeometry {
  int64_t c, start, count;
  int tx0, ty0, tw, th;
};

inline TileGeometry tile_of(int64_t job, int64_t T, int tiles_x, int tile_size, int width, int height,
                            const int64_t* offsets) {
  TileGeometry g;
  g.c = job / T;
  const int64_t tile = job % T;
  g.tx0 = (int)(tile % tiles_x) * tile_size;
  g.ty0 = (int)(tile / tiles_x) * tile_size;
  g.tw = std::min(tile_size, width - g.tx0);
  g.th = std::min(tile_size, height - g.ty0);
  g.start = offsets[job];
  g.count = offsets[job + 1] - g.start;
  return g;
}

// Scalar loops: splat-outer, pixel-inner (over the splat's rectangle in the tile), keeping each pixel's
// transmittance and running sums in tile-local arrays; per pixel the arithmetic and its order are those
// of the per-pixel loop of 3DGS, so results match the reference. Fills the entries' hit boxes if given.
template <typename scalar_t>
void forward_impl(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                  const at::Tensor& features, const at::Tensor& extents, const TileBins& bins, int width,
                  int height, int tile_size, int tiles_x, int tiles_y, at::Tensor& out_features,
                  at::Tensor& out_T, int32_t* out_n, HitBox* boxes) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y;
  const int64_t* offsets = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = bins.gauss_ids.data_ptr<int32_t>();
  scalar_t* out_f = out_features.data_ptr<scalar_t>();
  scalar_t* out_t = out_T.data_ptr<scalar_t>();
  const int64_t gauss_ids_count = bins.gauss_ids.numel();

  const scalar_t* records = bins.splat_records.data_ptr<scalar_t>();
  const int64_t R = bins.splat_records.size(1);
  std::atomic<int64_t> next_job{0};
  run_workers(num_threads_for(gauss_ids_count), [&]() {
    TileSplats<scalar_t> s;
    const int P = tile_size * tile_size;
    std::vector<scalar_t> acc(P * K), Tr(P);
    std::vector<int32_t> n_iter(P);
    std::vector<uint8_t> done(P);
for (int64_t job; (job = next_job.fetch_add(1)) < C * T;) {
      const TileGeometry tg = tile_of(job, T, tiles_x, tile_size, width, height, offsets);
      const int64_t c = tg.c, start = tg.start, count = tg.count;
      const int tx0 = tg.tx0, ty0 = tg.ty0, tw = tg.tw, th = tg.th;
      s.load(ids + start, count, records + c * N * R, R, tx0, ty0, tile_size, tile_size);
      std::fill(acc.begin(), acc.end(), (scalar_t)0);
      std::fill(Tr.begin(), Tr.end(), (scalar_t)1);
      std::fill(n_iter.begin(), n_iter.end(), 0);
      std::fill(done.begin(), done.end(), 0);
      int remaining = tw * th;
      int64_t i = 0;
      for (; i < count && remaining > 0; ++i) {
        const scalar_t* f = records + (c * N + ids[start + i]) * R + kRecFeatures;
        HitBox box = kEmptyBox;
        const int x1 = std::min(s.x1[i], tw - 1), y1 = std::min(s.y1[i], th - 1);
        for (int ly = s.y0[i]; ly <= y1; ++ly) {
          const scalar_t dy = s.my[i] - ((scalar_t)(ty0 + ly) + (scalar_t)0.5);
          for (int lx = s.x0[i]; lx <= x1; ++lx) {
            const int p = ly * tile_size + lx;
            if (done[p]) continue;
            const scalar_t dx = s.mx[i] - ((scalar_t)(tx0 + lx) + (scalar_t)0.5);
            const scalar_t power = (scalar_t)-0.5 * (s.ca[i] * dx * dx + s.cc[i] * dy * dy) - s.cb[i] * dx * dy;
            if (power < s.min_power[i] || power > 0) continue;
            const scalar_t alpha = std::min((scalar_t)kAlphaMax, s.op[i] * std::exp(power));
            if (alpha < (scalar_t)kAlphaThreshold) continue;
            const scalar_t next_T = Tr[p] * (1 - alpha);
            if (next_T <= (scalar_t)kTransmittanceMin) {
              done[p] = 1;
              --remaining;
              continue;
            }
            const scalar_t w = alpha * Tr[p];
            scalar_t* a = acc.data() + p * K;
            for (int64_t k = 0; k < K; ++k) a[k] += w * f[k];
            Tr[p] = next_T;
            n_iter[p] = (int32_t)(i + 1);
            grow(box, lx, lx, ly);
          }
        }
        if (boxes) boxes[start + i] = box;
      }
      // Entries after the point where every pixel stopped: nothing composited (the reduction reads them).
      if (boxes) std::fill(boxes + start + i, boxes + start + count, kEmptyBox);
      for (int ly = 0; ly < th; ++ly) {
        for (int lx = 0; lx < tw; ++lx) {
          const int p = ly * tile_size + lx;
          const int64_t pix = (c * height + ty0 + ly) * width + tx0 + lx;
          std::copy(acc.begin() + p * K, acc.begin() + (p + 1) * K, out_f + pix * K);
          out_t[pix] = Tr[p];
          if (out_n) out_n[pix] = n_iter[p];
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_impl(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                   const at::Tensor& features, const at::Tensor& extents, const at::Tensor& tile_offsets,
                   const at::Tensor& gauss_ids, const HitBox* boxes, const at::Tensor& splat_records,
                   const at::Tensor& final_T, const at::Tensor& n_iter, const at::Tensor& grad_features,
                   const at::Tensor& grad_alpha,
                   int width, int height, int tile_size, int tiles_x, int tiles_y, at::Tensor& entry_grads) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y, G = kGeomSlots + K;
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = gauss_ids.data_ptr<int32_t>();
  const scalar_t* fT = final_T.data_ptr<scalar_t>();
  const int32_t* nit = n_iter.data_ptr<int32_t>();
  const scalar_t* gf = grad_features.data_ptr<scalar_t>();
  const scalar_t* ga = grad_alpha.data_ptr<scalar_t>();
  scalar_t* eg = entry_grads.data_ptr<scalar_t>();
  const int64_t gauss_ids_count = gauss_ids.numel();

  const scalar_t* records = splat_records.data_ptr<scalar_t>();
  const int64_t R = splat_records.size(1);
  std::atomic<int64_t> next_job{0};
  run_workers(num_threads_for(gauss_ids_count), [&]() {
    TileSplats<scalar_t> s;
    const int P = tile_size * tile_size;
    std::vector<scalar_t> behind(P * K), Tr(P), T_final(P), g_alpha_out(P), g_pix(P * K);
    std::vector<int32_t> n_it(P);
for (int64_t job; (job = next_job.fetch_add(1)) < C * T;) {
      const TileGeometry tg = tile_of(job, T, tiles_x, tile_size, width, height, offsets);
      const int64_t c = tg.c, start = tg.start, count = tg.count;
      const int tx0 = tg.tx0, ty0 = tg.ty0, tw = tg.tw, th = tg.th;
      if (count == 0) continue;
      s.load(ids + start, count, records + c * N * R, R, tx0, ty0, tile_size, tile_size);
      std::fill(behind.begin(), behind.end(), (scalar_t)0);
      std::fill(n_it.begin(), n_it.end(), 0);
      int32_t max_iter = 0;
      for (int ly = 0; ly < th; ++ly) {
        for (int lx = 0; lx < tw; ++lx) {
          const int p = ly * tile_size + lx;
          const int64_t pix = (c * height + ty0 + ly) * width + tx0 + lx;
          Tr[p] = T_final[p] = fT[pix];
          g_alpha_out[p] = ga[pix];
          std::copy(gf + pix * K, gf + (pix + 1) * K, g_pix.begin() + p * K);
          n_it[p] = nit[pix];
          max_iter = std::max(max_iter, n_it[p]);
        }
      }
      for (int64_t i = (int64_t)max_iter - 1; i >= 0; --i) {
        const HitBox box = boxes[start + i];
        if (box.x0 > box.x1) continue;  // composited into no pixel in the forward
        const scalar_t* f = records + (c * N + ids[start + i]) * R + kRecFeatures;
        scalar_t* e = eg + (start + i) * G;
        std::fill(e, e + G, (scalar_t)0);  // entry_grads is not zeroed: entries with an empty box are never read
        for (int ly = box.y0; ly <= box.y1; ++ly) {
          const scalar_t dy = s.my[i] - ((scalar_t)(ty0 + ly) + (scalar_t)0.5);
          for (int lx = box.x0; lx <= box.x1; ++lx) {
            const int p = ly * tile_size + lx;
            if (i >= n_it[p]) continue;
            const scalar_t dx = s.mx[i] - ((scalar_t)(tx0 + lx) + (scalar_t)0.5);
            const scalar_t power = (scalar_t)-0.5 * (s.ca[i] * dx * dx + s.cc[i] * dy * dy) - s.cb[i] * dx * dy;
            if (power < s.min_power[i] || power > 0) continue;
            const scalar_t vis = std::exp(power);
            const scalar_t raw_alpha = s.op[i] * vis;
            const scalar_t alpha = std::min((scalar_t)kAlphaMax, raw_alpha);
            if (alpha < (scalar_t)kAlphaThreshold) continue;
            Tr[p] = Tr[p] / (1 - alpha);  // transmittance in front of splat i
            const scalar_t w = alpha * Tr[p];
            const scalar_t* gp = g_pix.data() + p * K;
            scalar_t* bh = behind.data() + p * K;
            // dC/dalpha_i = T_i (f_i - S_i), S_i = what is composited behind i, normalized.
            scalar_t g_alpha = 0;
            for (int64_t k = 0; k < K; ++k) {
              e[kGeomSlots + k] += w * gp[k];
              g_alpha += (f[k] - bh[k]) * gp[k];
              bh[k] = alpha * f[k] + (1 - alpha) * bh[k];
            }
            // alpha_out = 1 - prod(1 - alpha_j): d/dalpha_i = T_final / (1 - alpha_i).
            g_alpha = g_alpha * Tr[p] + g_alpha_out[p] * T_final[p] / (1 - alpha);
            if (raw_alpha > (scalar_t)kAlphaMax) continue;  // clamped: no gradient to opacity or shape
            const scalar_t g_power = alpha * g_alpha;
            const scalar_t g_mx = -g_power * (s.ca[i] * dx + s.cb[i] * dy);
            const scalar_t g_my = -g_power * (s.cb[i] * dx + s.cc[i] * dy);
            e[0] += g_mx;
            e[1] += g_my;
            e[2] += (scalar_t)-0.5 * g_power * dx * dx;
            e[3] += -g_power * dx * dy;
            e[4] += (scalar_t)-0.5 * g_power * dy * dy;
            e[5] += vis * g_alpha;
            e[6] += std::abs(g_mx);
            e[7] += std::abs(g_my);
          }
        }
      }
    }
  });
}

#if GSBENCH_HAVE_X86_SIMD
// 8 float32 lanes of AVX2 (+ FMA in exp). The power is computed with the scalar loop's operations in the
// same order (no FMA), so it is bitwise the scalar float32 value; exp differs by ~1 ulp.

// exp(x) for -30 <= x <= 0 (Cephes' expf: range reduction by ln 2 in two parts, degree-5 polynomial, as
// sse_mathfun). x is clamped to that range: lanes outside it are masked off by the callers (a splat's
// power is used only above log(1/255) > -6), and the clamp keeps their values away from subnormal floats,
// which cost ~100 cycles per operation.
GSBENCH_AVX2 static inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-30.0f)), _mm256_setzero_ps());
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

GSBENCH_AVX2 static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One tile entry's splat (what TileSplats holds for the scalar loops), read when the entry is visited:
// the forward stops early in tiles whose pixels are all opaque and the backward visits only the entries
// that composited something, so most entries of a dense tile are never read.
struct EntrySplat {
  float mx, my, ca, cb, cc, op, min_power;
  int x0, x1, y0, y1;  // inclusive pixel bounds, tile-local, clipped to the tile's pixels in the image
};

inline EntrySplat entry_splat(const float* rec, int tx0, int ty0, int tw, int th) {
  EntrySplat e;
  e.mx = rec[kRecMeanX]; e.my = rec[kRecMeanY];
  e.ca = rec[kRecConicA]; e.cb = rec[kRecConicB]; e.cc = rec[kRecConicC];
  e.op = rec[kRecOpacity];
  e.min_power = rec[kRecMinPower];
  e.x0 = std::max(0, load_int(rec + kRecX0) - tx0);
  e.x1 = std::min(tw - 1, load_int(rec + kRecX1) - tx0);
  e.y0 = std::max(0, load_int(rec + kRecY0) - ty0);
  e.y1 = std::min(th - 1, load_int(rec + kRecY1) - ty0);
  return e;
}

// One splat over the 8 pixels of a row segment: its power, identical in forward and backward.
struct SplatLanes {
  __m256 mx, ca, cb, op, min_power, x_lo, x_hi;
};

GSBENCH_AVX2 static inline SplatLanes splat_lanes(const EntrySplat& e, int x_lo, int x_hi) {
  return {_mm256_set1_ps(e.mx), _mm256_set1_ps(e.ca),        _mm256_set1_ps(e.cb),
          _mm256_set1_ps(e.op), _mm256_set1_ps(e.min_power), _mm256_set1_ps((float)x_lo),
          _mm256_set1_ps((float)x_hi)};
}

// dx, power and the mask of lanes with x_lo <= column <= x_hi and min_power <= power <= 0.
GSBENCH_AVX2 static inline __m256 lanes_power(const SplatLanes& L, int col0, int tx0, float dy, float cdd,
                                              __m256& dx, __m256& mask) {
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 col = _mm256_add_ps(_mm256_set1_ps((float)col0), lane);
  // (float)(tx0 + lx) + 0.5 exactly as the scalar loop (integers below 2^24 are exact in float).
  const __m256 centre = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps((float)(tx0 + col0)), lane), _mm256_set1_ps(0.5f));
  dx = _mm256_sub_ps(L.mx, centre);
  const __m256 quad = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(L.ca, dx), dx), _mm256_set1_ps(cdd));
  const __m256 power = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(-0.5f), quad),
                                     _mm256_mul_ps(_mm256_mul_ps(L.cb, dx), _mm256_set1_ps(dy)));
  mask = _mm256_and_ps(_mm256_cmp_ps(col, L.x_lo, _CMP_GE_OQ), _mm256_cmp_ps(col, L.x_hi, _CMP_LE_OQ));
  mask = _mm256_and_ps(mask, _mm256_cmp_ps(power, L.min_power, _CMP_GE_OQ));
  mask = _mm256_and_ps(mask, _mm256_cmp_ps(power, _mm256_setzero_ps(), _CMP_LE_OQ));
  return power;
}

// 32-byte aligned buffer of 4-byte values (std::vector's storage is only 16-byte aligned, and a 32-byte
// access across two cache lines is slow, its stores then failing to forward to the next loads).
template <typename T>
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n)
      : size_(n), data_(static_cast<T*>(std::aligned_alloc(32, ((n * sizeof(T) + 31) / 32) * 32))) {
    TORCH_CHECK(data_ != nullptr, "rasterize_cpu: out of memory");
    std::fill(data_, data_ + n, T(0));
  }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  T* data() { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  T& operator[](size_t i) { return data_[i]; }
  size_t size_;
  T* data_;
};
using AlignedFloats = AlignedBuffer<float>;

// alpha = min(0.99, opacity exp(power)) of splat i for the n_vec vectors from column c0 of each row y0..y1,
// written to out[8 * (row * n_vec + vector)]; 0 for lanes outside [x0, x1], with power outside
// [min_power, 0] or alpha < 1/255. With vis (backward) also exp(power), unmasked.
GSBENCH_AVX2 static inline void splat_alphas(const EntrySplat& s, int x0, int x1, int y0, int y1,
                                             int c0, int n_vec, int tx0, int ty0, float* out,
                                             float* vis = nullptr) {
  const SplatLanes L = splat_lanes(s, x0, x1);
  const __m256 alpha_max = _mm256_set1_ps((float)kAlphaMax), threshold = _mm256_set1_ps((float)kAlphaThreshold);
  for (int ly = y0, v = 0; ly <= y1; ++ly) {
    const float dy = s.my - ((float)(ty0 + ly) + 0.5f);
    const float cdd = s.cc * dy * dy;
    for (int j = 0, col0 = c0; j < n_vec; ++j, ++v, col0 += 8) {
      __m256 dx, m;
      const __m256 power = lanes_power(L, col0, tx0, dy, cdd, dx, m);
      const __m256 e = exp256(power);
      const __m256 alpha = _mm256_min_ps(alpha_max, _mm256_mul_ps(L.op, e));
      m = _mm256_and_ps(m, _mm256_cmp_ps(alpha, threshold, _CMP_GE_OQ));
      _mm256_store_ps(out + 8 * v, _mm256_and_ps(alpha, m));
      if (vis) _mm256_store_ps(vis + 8 * v, e);
    }
  }
}

// KC > 0: the number of channels known at compile time (the channel loop unrolled).
template <int KC>
GSBENCH_AVX2 void forward_simd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                               const at::Tensor& features, const at::Tensor& extents, const TileBins& bins,
                               int width, int height, int tile_size, int tiles_x, int tiles_y,
                               at::Tensor& out_features, at::Tensor& out_T, int32_t* out_n, HitBox* boxes) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = KC > 0 ? KC : features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y;
  const int64_t* offsets = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = bins.gauss_ids.data_ptr<int32_t>();
  float* out_f = out_features.data_ptr<float>();
  float* out_t = out_T.data_ptr<float>();
  const int64_t gauss_ids_count = bins.gauss_ids.numel();

  const float* records = bins.splat_records.data_ptr<float>();
  const int64_t R = bins.splat_records.size(1);
  std::atomic<int64_t> next_job{0};
  run_workers(num_threads_for(gauss_ids_count), [&]() GSBENCH_AVX2 {
    const int P = tile_size * tile_size;
    // Per-thread tile state, channel-major (acc[k * P + p]) so that 8 neighbouring pixels are one vector.
    AlignedBuffer<float> acc(P * K), Tr(P);
    AlignedBuffer<int32_t> n_iter(P), done(P);
    AlignedFloats alpha_buf(P);  // pass 1's alphas of one splat (at most the whole tile)
for (int64_t job; (job = next_job.fetch_add(1)) < C * T;) {
      const TileGeometry tg = tile_of(job, T, tiles_x, tile_size, width, height, offsets);
      const int64_t c = tg.c, start = tg.start, count = tg.count;
      const int tx0 = tg.tx0, ty0 = tg.ty0, tw = tg.tw, th = tg.th;
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(Tr.begin(), Tr.end(), 1.0f);
      std::fill(n_iter.begin(), n_iter.end(), 0);
      for (int p = 0; p < P; ++p) done[p] = (p % tile_size < tw && p / tile_size < th) ? 0 : -1;
      int remaining = tw * th;
      int64_t i = 0;
      for (; i < count && remaining > 0; ++i) {
        // The record of a splat two entries ahead is fetched while this one is composited.
        if (i + 2 < count) _mm_prefetch((const char*)(records + (c * N + ids[start + i + 2]) * R), _MM_HINT_T0);
        const float* rec = records + (c * N + ids[start + i]) * R;
        const EntrySplat e = entry_splat(rec, tx0, ty0, tw, th);
        const int x0 = e.x0, x1 = e.x1, y0 = e.y0, y1 = e.y1;
        if (x0 > x1 || y0 > y1) {
          if (boxes) boxes[start + i] = kEmptyBox;
          continue;
        }
        const float* f = rec + kRecFeatures;
        const int c0 = x0 & ~7, n_vec = ((x1 - c0) >> 3) + 1;
        // Pass 1: alpha of every vector of the splat's rectangle (0 where not used). No dependence
        // between vectors or on the tile state, so the CPU overlaps their long exp chains.
        splat_alphas(e, x0, x1, y0, y1, c0, n_vec, tx0, ty0, alpha_buf.data());
        __m256 f_lanes[KC > 0 ? KC : 1];  // the splat's channels, broadcast once (KC > 0)
        for (int k = 0; k < KC; ++k) f_lanes[k] = _mm256_set1_ps(f[k]);
        // Pass 2: front-to-back update of the pixels' state (the dependent part, short chains).
        const __m256i next_n = _mm256_set1_epi32((int32_t)(i + 1));
        uint32_t row_bits = 0, col_bits = 0;
        const __m256 zero = _mm256_setzero_ps();
        for (int ly = y0, v = 0; ly <= y1; ++ly) {
          uint32_t row_hit = 0;
          for (int col0 = c0; col0 <= x1; col0 += 8, ++v) {
            const int p = ly * tile_size + col0;
            const __m256 alpha = _mm256_load_ps(&alpha_buf[8 * v]);
            const __m256 done_now = _mm256_loadu_ps((const float*)&done[p]);
            const __m256 m = _mm256_andnot_ps(done_now, _mm256_cmp_ps(alpha, zero, _CMP_GT_OQ));
            const __m256 T_now = _mm256_loadu_ps(&Tr[p]);
            const __m256 next_T = _mm256_mul_ps(T_now, _mm256_sub_ps(_mm256_set1_ps(1.0f), alpha));
            const __m256 stop = _mm256_and_ps(m, _mm256_cmp_ps(next_T, _mm256_set1_ps((float)kTransmittanceMin), _CMP_LE_OQ));
            const int stop_bits = _mm256_movemask_ps(stop);
            if (stop_bits) {  // rare: pixels reaching T = 1e-4
              _mm256_storeu_ps((float*)&done[p], _mm256_or_ps(done_now, stop));
              remaining -= __builtin_popcount(stop_bits);
            }
            const __m256 active = _mm256_andnot_ps(stop, m);
            const uint32_t bits = (uint32_t)_mm256_movemask_ps(active);
            const __m256 w = _mm256_and_ps(_mm256_mul_ps(alpha, T_now), active);
            for (int64_t k = 0; k < K; ++k) {
              float* a = acc.data() + k * P + p;
              const __m256 fk = KC > 0 ? f_lanes[KC > 0 ? k : 0] : _mm256_set1_ps(f[k]);
              _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_mul_ps(w, fk)));
            }
            _mm256_storeu_ps(&Tr[p], _mm256_blendv_ps(T_now, next_T, active));
            const __m256i n_now = _mm256_loadu_si256((const __m256i*)&n_iter[p]);
            _mm256_storeu_si256((__m256i*)&n_iter[p],
                                _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(n_now),
                                                                     _mm256_castsi256_ps(next_n), active)));
            col_bits |= bits << col0;
            row_hit |= bits;
          }
          row_bits |= (uint32_t)(row_hit != 0) << ly;
        }
        HitBox box = kEmptyBox;
        if (col_bits) {
          box = {(uint8_t)__builtin_ctz(col_bits), (uint8_t)(31 - __builtin_clz(col_bits)),
                 (uint8_t)__builtin_ctz(row_bits), (uint8_t)(31 - __builtin_clz(row_bits))};
        }
        if (boxes) boxes[start + i] = box;
      }
      // Entries after the point where every pixel stopped: nothing composited (the reduction reads them).
      if (boxes) std::fill(boxes + start + i, boxes + start + count, kEmptyBox);
      for (int ly = 0; ly < th; ++ly) {
        for (int lx = 0; lx < tw; ++lx) {
          const int p = ly * tile_size + lx;
          const int64_t pix = (c * height + ty0 + ly) * width + tx0 + lx;
          for (int64_t k = 0; k < K; ++k) out_f[pix * K + k] = acc[k * P + p];
          out_t[pix] = Tr[p];
          if (out_n) out_n[pix] = n_iter[p];
        }
      }
    }
  });
}

// KC > 0: the number of channels known at compile time (the feature gradients stay in registers).
template <int KC>
GSBENCH_AVX2 void backward_simd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                                const at::Tensor& features, const at::Tensor& extents, const at::Tensor& tile_offsets,
                                const at::Tensor& gauss_ids, const HitBox* boxes, const at::Tensor& splat_records,
                                const at::Tensor& final_T, const at::Tensor& n_iter, const at::Tensor& grad_features,
                                const at::Tensor& grad_alpha, int width, int height, int tile_size, int tiles_x,
                                int tiles_y, at::Tensor& entry_grads) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = KC > 0 ? KC : features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y, G = kGeomSlots + K;
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = gauss_ids.data_ptr<int32_t>();
  const float* fT = final_T.data_ptr<float>();
  const int32_t* nit = n_iter.data_ptr<int32_t>();
  const float* gf = grad_features.data_ptr<float>();
  const float* ga = grad_alpha.data_ptr<float>();
  float* eg = entry_grads.data_ptr<float>();
  const int64_t gauss_ids_count = gauss_ids.numel();

  const float* records = splat_records.data_ptr<float>();
  const int64_t R = splat_records.size(1);
  std::atomic<int64_t> next_job{0};
  run_workers(num_threads_for(gauss_ids_count), [&]() GSBENCH_AVX2 {
    const int P = tile_size * tile_size;
    // Per pixel: T (recovered back to front), what is composited behind (channel-major), dL/dpixel and
    // dL/dalpha_out * T_final (the alpha output's term, constant per pixel).
    AlignedBuffer<float> behind(P * K), Tr(P), g_out_T(P), g_pix(P * K), g_feat(8 * K);
    AlignedFloats alpha_buf(P), vis_buf(P);  // pass 1's values for one splat
    AlignedBuffer<int32_t> n_it(P);
for (int64_t job; (job = next_job.fetch_add(1)) < C * T;) {
      const TileGeometry tg = tile_of(job, T, tiles_x, tile_size, width, height, offsets);
      const int64_t c = tg.c, start = tg.start, count = tg.count;
      const int tx0 = tg.tx0, ty0 = tg.ty0, tw = tg.tw, th = tg.th;
      if (count == 0) continue;
      std::fill(behind.begin(), behind.end(), 0.0f);
      std::fill(n_it.begin(), n_it.end(), 0);  // pixels outside the image: nothing to walk back
      int32_t max_iter = 0;
      for (int ly = 0; ly < th; ++ly) {
        for (int lx = 0; lx < tw; ++lx) {
          const int p = ly * tile_size + lx;
          const int64_t pix = (c * height + ty0 + ly) * width + tx0 + lx;
          Tr[p] = fT[pix];
          g_out_T[p] = ga[pix] * fT[pix];
          for (int64_t k = 0; k < K; ++k) g_pix[k * P + p] = gf[pix * K + k];
          n_it[p] = nit[pix];
          max_iter = std::max(max_iter, n_it[p]);
        }
      }
      if (max_iter == 0) continue;
      const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(-0.5f);
      const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
      for (int64_t i = (int64_t)max_iter - 1; i >= 0; --i) {
        const HitBox box = boxes[start + i];
        if (box.x0 > box.x1) continue;  // composited into no pixel in the forward
        if (i >= 2) _mm_prefetch((const char*)(records + (c * N + ids[start + i - 2]) * R), _MM_HINT_T0);
        const float* rec = records + (c * N + ids[start + i]) * R;
        const float* f = rec + kRecFeatures;
        const EntrySplat sp = entry_splat(rec, tx0, ty0, tw, th);
        const SplatLanes L = splat_lanes(sp, box.x0, box.x1);
        const __m256 cc = _mm256_set1_ps(sp.cc);
        const __m256i vi = _mm256_set1_epi32((int32_t)i);
        __m256 a_mx = _mm256_setzero_ps(), a_my = a_mx, a_ca = a_mx, a_cb = a_mx, a_cc = a_mx, a_op = a_mx;
        __m256 a_absx = a_mx, a_absy = a_mx;
        __m256 g_reg[KC > 0 ? KC : 1];
        for (int k = 0; k < (KC > 0 ? KC : 1); ++k) g_reg[k] = _mm256_setzero_ps();
        if (KC == 0) std::fill(g_feat.begin(), g_feat.end(), 0.0f);
        const int c0 = box.x0 & ~7, n_vec = ((box.x1 - c0) >> 3) + 1;
        // Pass 1 (independent vectors): alpha (0 where the pair is not used) and exp(power).
        splat_alphas(sp, box.x0, box.x1, box.y0, box.y1, c0, n_vec, tx0, ty0, alpha_buf.data(), vis_buf.data());
        __m256 f_lanes[KC > 0 ? KC : 1];  // the splat's channels, broadcast once (KC > 0)
        for (int k = 0; k < KC; ++k) f_lanes[k] = _mm256_set1_ps(f[k]);
        const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
        for (int ly = box.y0, v = 0; ly <= box.y1; ++ly) {
          const float dy_s = sp.my - ((float)(ty0 + ly) + 0.5f);
          const __m256 dy = _mm256_set1_ps(dy_s);
          for (int col0 = c0; col0 <= box.x1; col0 += 8, ++v) {
            const int p = ly * tile_size + col0;
            const __m256 dx = _mm256_sub_ps(
                L.mx, _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps((float)(tx0 + col0)), lane), _mm256_set1_ps(0.5f)));
            const __m256 alpha = _mm256_load_ps(&alpha_buf[8 * v]);
            const __m256 vis = _mm256_load_ps(&vis_buf[8 * v]);
            const __m256i n_now = _mm256_loadu_si256((const __m256i*)&n_it[p]);
            const __m256 m = _mm256_and_ps(_mm256_cmp_ps(alpha, _mm256_setzero_ps(), _CMP_GT_OQ),
                                           _mm256_castsi256_ps(_mm256_cmpgt_epi32(n_now, vi)));
            const __m256 raw_alpha = _mm256_mul_ps(L.op, vis);
            const __m256 one_minus = _mm256_sub_ps(one, alpha);
            const __m256 inv_one_minus = _mm256_div_ps(one, one_minus);
            const __m256 T_behind = _mm256_loadu_ps(&Tr[p]);
            const __m256 T_i = _mm256_mul_ps(T_behind, inv_one_minus);  // transmittance in front of splat i
            _mm256_storeu_ps(&Tr[p], _mm256_blendv_ps(T_behind, T_i, m));
            const __m256 w = _mm256_and_ps(_mm256_mul_ps(alpha, T_i), m);
            // dC/dalpha_i = T_i (f_i - S_i), S_i = what is composited behind i, normalized.
            __m256 g_alpha = _mm256_setzero_ps();
            for (int64_t k = 0; k < K; ++k) {
              const __m256 gp = _mm256_loadu_ps(&g_pix[k * P + p]);
              const __m256 bh = _mm256_loadu_ps(&behind[k * P + p]);
              const __m256 fk = KC > 0 ? f_lanes[KC > 0 ? k : 0] : _mm256_set1_ps(f[k]);
              if constexpr (KC > 0) {
                g_reg[k] = _mm256_add_ps(g_reg[k], _mm256_mul_ps(w, gp));
              } else {
                float* gk = &g_feat[8 * k];
                _mm256_storeu_ps(gk, _mm256_add_ps(_mm256_loadu_ps(gk), _mm256_mul_ps(w, gp)));
              }
              g_alpha = _mm256_add_ps(g_alpha, _mm256_mul_ps(_mm256_sub_ps(fk, bh), gp));
              const __m256 bh_new = _mm256_add_ps(_mm256_mul_ps(alpha, fk), _mm256_mul_ps(one_minus, bh));
              _mm256_storeu_ps(&behind[k * P + p], _mm256_blendv_ps(bh, bh_new, m));
            }
            // alpha_out = 1 - prod(1 - alpha_j): d/dalpha_i = T_final / (1 - alpha_i).
            g_alpha = _mm256_add_ps(_mm256_mul_ps(g_alpha, T_i), _mm256_mul_ps(_mm256_loadu_ps(&g_out_T[p]), inv_one_minus));
            // Clamped alpha: no gradient to opacity or shape.
            const __m256 m2 = _mm256_and_ps(m, _mm256_cmp_ps(raw_alpha, _mm256_set1_ps((float)kAlphaMax), _CMP_LE_OQ));
            const __m256 g_power = _mm256_and_ps(_mm256_mul_ps(alpha, g_alpha), m2);
            const __m256 neg_g = _mm256_sub_ps(_mm256_setzero_ps(), g_power);
            const __m256 g_mx = _mm256_and_ps(_mm256_mul_ps(neg_g, _mm256_add_ps(_mm256_mul_ps(L.ca, dx), _mm256_mul_ps(L.cb, dy))), m2);
            const __m256 g_my = _mm256_and_ps(_mm256_mul_ps(neg_g, _mm256_add_ps(_mm256_mul_ps(L.cb, dx), _mm256_mul_ps(cc, dy))), m2);
            const __m256 hg = _mm256_mul_ps(half, g_power);
            a_mx = _mm256_add_ps(a_mx, g_mx);
            a_my = _mm256_add_ps(a_my, g_my);
            a_ca = _mm256_add_ps(a_ca, _mm256_mul_ps(_mm256_mul_ps(hg, dx), dx));
            a_cb = _mm256_add_ps(a_cb, _mm256_mul_ps(_mm256_mul_ps(neg_g, dx), dy));
            a_cc = _mm256_add_ps(a_cc, _mm256_mul_ps(_mm256_mul_ps(hg, dy), dy));
            a_op = _mm256_add_ps(a_op, _mm256_and_ps(_mm256_mul_ps(vis, g_alpha), m2));
            a_absx = _mm256_add_ps(a_absx, _mm256_and_ps(g_mx, abs_mask));
            a_absy = _mm256_add_ps(a_absy, _mm256_and_ps(g_my, abs_mask));
          }
        }
        float* e = eg + (start + i) * G;
        e[0] = hsum256(a_mx); e[1] = hsum256(a_my);
        e[2] = hsum256(a_ca); e[3] = hsum256(a_cb); e[4] = hsum256(a_cc);
        e[5] = hsum256(a_op); e[6] = hsum256(a_absx); e[7] = hsum256(a_absy);
        for (int64_t k = 0; k < K; ++k)
          e[kGeomSlots + k] = hsum256(KC > 0 ? g_reg[KC > 0 ? k : 0] : _mm256_loadu_ps(&g_feat[8 * k]));
      }
    }
  });
}
#endif  // GSBENCH_HAVE_X86_SIMD


// Per splat, the sum of its entries' gradients in increasing tile order (the order of one pass over the
// entries, so the same bits for any thread count); entries that composited nothing (empty hit box) hold
// no gradient and are skipped (their slots are never written). Splats are split over the threads.
template <typename scalar_t>
void reduce_entries(const at::Tensor& entry_grads, const HitBox* boxes, const at::Tensor& splat_offsets,
                    const at::Tensor& splat_entries, at::Tensor& out) {
  const int64_t G = entry_grads.size(1), CN = splat_offsets.numel() - 1;
  const scalar_t* eg = entry_grads.data_ptr<scalar_t>();
  const int64_t* first = splat_offsets.data_ptr<int64_t>();
  const int32_t* entries = splat_entries.data_ptr<int32_t>();
  scalar_t* o = out.data_ptr<scalar_t>();
  std::atomic<int64_t> next_chunk{0};
  run_workers(first[CN] < 4096 ? 1 : at::get_num_threads(), [&] {
    std::vector<scalar_t> sum(G);
    for (int64_t chunk; (chunk = next_chunk.fetch_add(kBinChunk)) < CN;)
      for (int64_t g = chunk; g < std::min(CN, chunk + kBinChunk); ++g) {
        std::fill(sum.begin(), sum.end(), (scalar_t)0);
        for (int64_t j = first[g]; j < first[g + 1]; ++j) {
          const HitBox box = boxes[entries[j]];
          if (box.x0 > box.x1) continue;
          const scalar_t* src = eg + (int64_t)entries[j] * G;
          for (int64_t k = 0; k < G; ++k) sum[k] += src[k];
        }
        std::copy(sum.begin(), sum.end(), o + g * G);
      }
  });
}

void check_inputs(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                  const at::Tensor& features) {
  TORCH_CHECK(means2d.device().is_cpu(), "rasterize_cpu: tensors must be on the CPU");
  TORCH_CHECK(means2d.is_contiguous() && conics.is_contiguous() && opacities.is_contiguous() &&
                  features.is_contiguous(),
              "rasterize_cpu: inputs must be contiguous");
  TORCH_CHECK(means2d.dim() == 3 && means2d.size(2) == 2, "means2d must be [C, N, 2]");
  TORCH_CHECK(conics.dim() == 3 && conics.size(2) == 3, "conics must be [C, N, 3]");
  TORCH_CHECK(opacities.dim() == 2, "opacities must be [C, N]");
  TORCH_CHECK(features.dim() == 3, "features must be [C, N, K]");
  TORCH_CHECK(means2d.size(1) < INT32_MAX, "too many Gaussians");
}


// ---------------------------------------------------------------------------------------------------
// Projection (3DGS Eqs. 4-6, EWA): the same arithmetic as projection.py, fused with its analytic
// backward, so a training step does not pay ~100 small torch ops on N-element tensors.

struct Camera {
  double R[3][3], t[3], fx, fy, cx, cy;
};

inline Camera camera_of(const double* viewmat, const double* K) {
  Camera cam;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) cam.R[i][j] = viewmat[4 * i + j];
    cam.t[i] = viewmat[4 * i + 3];
  }
  cam.fx = K[0]; cam.fy = K[4]; cam.cx = K[2]; cam.cy = K[5];
  return cam;
}

inline void quat_to_rot(const double q[4], double R[3][3]) {
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  R[0][0] = 1 - 2 * (y * y + z * z); R[0][1] = 2 * (x * y - w * z); R[0][2] = 2 * (x * z + w * y);
  R[1][0] = 2 * (x * y + w * z); R[1][1] = 1 - 2 * (x * x + z * z); R[1][2] = 2 * (y * z - w * x);
  R[2][0] = 2 * (x * z - w * y); R[2][1] = 2 * (y * z + w * x); R[2][2] = 1 - 2 * (x * x + y * y);
}

// out = op(A) op(B) for 3x3 matrices (op: as is, or transposed with a_t / b_t), summing k = 0, 1, 2 in order.
inline void mul3(const double A[3][3], bool a_t, const double B[3][3], bool b_t, double out[3][3]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double acc = 0;
      for (int k = 0; k < 3; ++k) acc += (a_t ? A[k][i] : A[i][k]) * (b_t ? B[j][k] : B[k][j]);
      out[i][j] = acc;
    }
}

// Everything the forward computes for one (camera, Gaussian), kept for the backward.
struct ProjState {
  double q[4], qnorm, Rq[3][3], M[3][3], Sigma_c[3][3], p[3], J[2][3], cov[2][2];
  double det, det_orig, comp, ux, uy;
  bool clamped_x, clamped_y, valid;
};

inline void project_one(const Camera& cam, const double* mean, const double* quat, const double* scale, double near,
                        double far, double eps2d, int width, int height, ProjState& st) {
  st.qnorm = std::sqrt(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
  const double inv = st.qnorm > 0 ? 1.0 / st.qnorm : 0.0;
  for (int i = 0; i < 4; ++i) st.q[i] = quat[i] * inv;
  quat_to_rot(st.q, st.Rq);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) st.M[i][j] = st.Rq[i][j] * scale[j];
  double Sigma[3][3], RS[3][3];
  mul3(st.M, false, st.M, true, Sigma);  // Sigma = M M^T
  for (int i = 0; i < 3; ++i) {
    st.p[i] = cam.t[i];
    for (int k = 0; k < 3; ++k) st.p[i] += cam.R[i][k] * mean[k];
  }
  mul3(cam.R, false, Sigma, false, RS);
  mul3(RS, false, cam.R, true, st.Sigma_c);  // Sigma_c = R Sigma R^T
  const double x = st.p[0], y = st.p[1], z = st.p[2];
  st.valid = z > near && z < far;
  const double zs = st.valid ? z : 1.0;
  const double tan_x = 0.5 * width / cam.fx, tan_y = 0.5 * height / cam.fy;
  const double lxp = (width - cam.cx) / cam.fx + kFovMargin * tan_x, lxn = cam.cx / cam.fx + kFovMargin * tan_x;
  const double lyp = (height - cam.cy) / cam.fy + kFovMargin * tan_y, lyn = cam.cy / cam.fy + kFovMargin * tan_y;
  const double rx = x / zs, ry = y / zs;
  st.clamped_x = rx < -lxn || rx > lxp;
  st.clamped_y = ry < -lyn || ry > lyp;
  st.ux = std::min(std::max(rx, -lxn), lxp);
  st.uy = std::min(std::max(ry, -lyn), lyp);
  st.J[0][0] = cam.fx / zs; st.J[0][1] = 0; st.J[0][2] = -cam.fx * st.ux / zs;
  st.J[1][0] = 0; st.J[1][1] = cam.fy / zs; st.J[1][2] = -cam.fy * st.uy / zs;
  double JS[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      double acc = 0;
      for (int k = 0; k < 3; ++k) acc += st.J[i][k] * st.Sigma_c[k][j];
      JS[i][j] = acc;
    }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      double acc = 0;
      for (int k = 0; k < 3; ++k) acc += JS[i][k] * st.J[j][k];
      st.cov[i][j] = acc;
    }
  const double a0 = st.cov[0][0], b = 0.5 * (st.cov[0][1] + st.cov[1][0]), c0 = st.cov[1][1];
  st.det_orig = a0 * c0 - b * b;
  st.det = (a0 + eps2d) * (c0 + eps2d) - b * b;
  st.valid = st.valid && st.det > 0;
  st.comp = st.det > 0 ? std::sqrt(std::max(st.det_orig / st.det, 0.0)) : 0.0;
}

template <typename scalar_t>
std::vector<at::Tensor> project_forward_impl(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                             const at::Tensor& opacities, const at::Tensor& viewmats,
                                             const at::Tensor& Ks, int64_t width, int64_t height, double near,
                                             double far, double eps2d, bool antialiased) {
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto opts = means.options();
  auto means2d = at::zeros({C, N, 2}, opts), conics = at::zeros({C, N, 3}, opts);
  auto depths = at::zeros({C, N}, opts), opac_eff = at::zeros({C, N}, opts);
  auto extents = at::zeros({C, N, 2}, opts), comps = at::zeros({C, N}, opts);
  auto radii = at::zeros({C, N}, opts.dtype(at::kInt));
  const scalar_t *m = means.data_ptr<scalar_t>(), *q = quats.data_ptr<scalar_t>(), *s = scales.data_ptr<scalar_t>();
  const scalar_t* o = opacities.data_ptr<scalar_t>();
  auto vm = viewmats.to(at::kDouble).contiguous(), kk = Ks.to(at::kDouble).contiguous();
  const double *vmp = vm.data_ptr<double>(), *kp = kk.data_ptr<double>();
  scalar_t *m2 = means2d.data_ptr<scalar_t>(), *co = conics.data_ptr<scalar_t>(), *de = depths.data_ptr<scalar_t>();
  scalar_t *oe = opac_eff.data_ptr<scalar_t>(), *ex = extents.data_ptr<scalar_t>(), *cp = comps.data_ptr<scalar_t>();
  int32_t* ra = radii.data_ptr<int32_t>();
  // Chunks of Gaussians from an atomic counter (see run_workers).
  std::atomic<int64_t> next_chunk{0};
  run_workers(N * C < 20000 ? 1 : at::get_num_threads(), [&] {
    for (int64_t first; (first = next_chunk.fetch_add(kProjectChunk)) < C * N;)
      for (int64_t job = first; job < std::min(C * N, first + kProjectChunk); ++job) {
        const int64_t c = job / N, n = job % N;
        const Camera cam = camera_of(vmp + 16 * c, kp + 9 * c);
        double mean[3], quat[4], scale[3];
        for (int i = 0; i < 3; ++i) { mean[i] = m[3 * n + i]; scale[i] = s[3 * n + i]; }
        for (int i = 0; i < 4; ++i) quat[i] = q[4 * n + i];
        ProjState st;
        project_one(cam, mean, quat, scale, near, far, eps2d, (int)width, (int)height, st);
        const double z = st.p[2], zs = st.valid ? z : 1.0;
        de[job] = (scalar_t)z;
        const double comp = antialiased ? st.comp : 1.0;
        cp[job] = (scalar_t)comp;
        const double op = o[n] * comp;
        oe[job] = (scalar_t)op;
        const double a = st.cov[0][0] + eps2d, b = 0.5 * (st.cov[0][1] + st.cov[1][0]), cc = st.cov[1][1] + eps2d;
        const double det = st.valid ? st.det : 1.0;
        co[3 * job] = (scalar_t)(cc / det); co[3 * job + 1] = (scalar_t)(-b / det); co[3 * job + 2] = (scalar_t)(a / det);
        const double u = cam.fx * st.p[0] / zs + cam.cx, v = cam.fy * st.p[1] / zs + cam.cy;
        m2[2 * job] = (scalar_t)u; m2[2 * job + 1] = (scalar_t)v;
        // Same visibility rule as projection.py, on the values as stored (scalar_t).
        const double op_s = (double)oe[job];
        if (!st.valid || !(op_s >= kAlphaThreshold) || !std::isfinite(u) || !std::isfinite(v)) continue;
        const double sigma_radius = std::sqrt(2.0 * std::log(std::max(op_s / kAlphaThreshold, 1.0)));
        const double ext_x = sigma_radius * std::sqrt(std::max(a, 0.0)), ext_y = sigma_radius * std::sqrt(std::max(cc, 0.0));
        if (!(u + ext_x > 0 && u - ext_x < width && v + ext_y > 0 && v - ext_y < height)) continue;
        ex[2 * job] = (scalar_t)ext_x; ex[2 * job + 1] = (scalar_t)ext_y;
        ra[job] = std::max(1, (int32_t)std::ceil(std::max(ext_x, ext_y)));
      }
  });
  return {means2d, conics, depths, opac_eff, extents, radii, comps};
}

template <typename scalar_t>
std::vector<at::Tensor> project_backward_impl(const at::Tensor& means, const at::Tensor& quats,
                                              const at::Tensor& scales, const at::Tensor& opacities,
                                              const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width,
                                              int64_t height, double near, double far, double eps2d, bool antialiased,
                                              const at::Tensor& radii, const at::Tensor& v_means2d,
                                              const at::Tensor& v_conics, const at::Tensor& v_depths,
                                              const at::Tensor& v_opac_eff) {
  const int64_t N = means.size(0), C = viewmats.size(0);
  // Per Gaussian: its cameras' gradients summed in double (in camera order), then written once.
  auto v_means = at::empty({N, 3}, means.options()), v_quats = at::empty({N, 4}, means.options());
  auto v_scales = at::empty({N, 3}, means.options()), v_opacities = at::empty({N}, means.options());
  scalar_t *gm = v_means.data_ptr<scalar_t>(), *gq = v_quats.data_ptr<scalar_t>();
  scalar_t *gs = v_scales.data_ptr<scalar_t>(), *go = v_opacities.data_ptr<scalar_t>();
  const scalar_t *m = means.data_ptr<scalar_t>(), *q = quats.data_ptr<scalar_t>(), *s = scales.data_ptr<scalar_t>();
  const scalar_t* o = opacities.data_ptr<scalar_t>();
  auto vm = viewmats.to(at::kDouble).contiguous(), kk = Ks.to(at::kDouble).contiguous();
  const double *vmp = vm.data_ptr<double>(), *kp = kk.data_ptr<double>();
  const int32_t* ra = radii.data_ptr<int32_t>();
  const scalar_t *vm2 = v_means2d.data_ptr<scalar_t>(), *vco = v_conics.data_ptr<scalar_t>();
  const scalar_t *vde = v_depths.data_ptr<scalar_t>(), *voe = v_opac_eff.data_ptr<scalar_t>();
  // Chunks of Gaussians from an atomic counter (see run_workers).
  std::atomic<int64_t> next_chunk{0};
  run_workers(N * C < 20000 ? 1 : at::get_num_threads(), [&] {
    for (int64_t first; (first = next_chunk.fetch_add(kProjectChunk)) < N;)
      for (int64_t n = first; n < std::min(N, first + kProjectChunk); ++n) {
        double total[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // mean 3, quat 4, scale 3, opacity 1
        for (int64_t c = 0; c < C; ++c) {
          const int64_t job = c * N + n;
          if (ra[job] <= 0) continue;  // culled: no pixel saw it
          const Camera cam = camera_of(vmp + 16 * c, kp + 9 * c);
          double mean[3], quat[4], scale[3];
          for (int i = 0; i < 3; ++i) { mean[i] = m[3 * n + i]; scale[i] = s[3 * n + i]; }
          for (int i = 0; i < 4; ++i) quat[i] = q[4 * n + i];
          ProjState st;
          project_one(cam, mean, quat, scale, near, far, eps2d, (int)width, (int)height, st);
          double out[11];  // this camera's gradients: mean 3, quat 4, scale 3, opacity 1
          const double x = st.p[0], y = st.p[1], z = st.p[2];
          const double a = st.cov[0][0] + eps2d, b = 0.5 * (st.cov[0][1] + st.cov[1][0]), cc = st.cov[1][1] + eps2d;
          const double det = st.det;
          // conic = inverse of the blurred covariance: v_cov = -Ci V Ci with V the symmetric upstream.
          const double Ci[2][2] = {{cc / det, -b / det}, {-b / det, a / det}};
          const double V[2][2] = {{(double)vco[3 * job], 0.5 * vco[3 * job + 1]}, {0.5 * vco[3 * job + 1], (double)vco[3 * job + 2]}};
          double G[2][2];
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
              double acc = 0;
              for (int k = 0; k < 2; ++k)
                for (int l = 0; l < 2; ++l) acc += Ci[i][k] * V[k][l] * Ci[l][j];
              G[i][j] = -acc;
            }
          const double v_op_eff = voe[job];
          const double comp = antialiased ? st.comp : 1.0;
          out[10] = v_op_eff * comp;
          if (antialiased && st.comp > 1e-12) {
            // comp = sqrt(det_orig / det_blur); d det / d cov = adjugate (entries as independent).
            const double v_comp = v_op_eff * o[n];
            const double v_r = v_comp * 0.5 / st.comp;
            const double a0 = st.cov[0][0], c0 = st.cov[1][1];
            const double dorig[2][2] = {{c0, -b}, {-b, a0}}, dblur[2][2] = {{cc, -b}, {-b, a}};
            for (int i = 0; i < 2; ++i)
              for (int j = 0; j < 2; ++j)
                G[i][j] += v_r * (dorig[i][j] * det - st.det_orig * dblur[i][j]) / (det * det);
          }
          // cov = J Sigma_c J^T: v_Sigma_c = J^T G J, v_J = 2 G J Sigma_c.
          double v_Sc[3][3], GJ[2][3], v_J[2][3];
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j) GJ[i][j] = G[i][0] * st.J[0][j] + G[i][1] * st.J[1][j];
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) v_Sc[i][j] = st.J[0][i] * GJ[0][j] + st.J[1][i] * GJ[1][j];
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j) {
              double acc = 0;
              for (int k = 0; k < 3; ++k) acc += GJ[i][k] * st.Sigma_c[k][j];
              v_J[i][j] = 2 * acc;
            }
          // Camera-space point: means2d, depth and J depend on it.
          const double fx = cam.fx, fy = cam.fy;
          const double vu = vm2[2 * job], vv = vm2[2 * job + 1];
          double v_p[3] = {vu * fx / z, vv * fy / z, (double)vde[job] - vu * fx * x / (z * z) - vv * fy * y / (z * z)};
          v_p[2] += -v_J[0][0] * fx / (z * z) - v_J[1][1] * fy / (z * z);
          v_p[2] += v_J[0][2] * fx * st.ux / (z * z) + v_J[1][2] * fy * st.uy / (z * z);
          if (!st.clamped_x) {
            v_p[0] += -v_J[0][2] * fx / (z * z);
            v_p[2] += v_J[0][2] * fx * x / (z * z * z);
          }
          if (!st.clamped_y) {
            v_p[1] += -v_J[1][2] * fy / (z * z);
            v_p[2] += v_J[1][2] * fy * y / (z * z * z);
          }
          for (int k = 0; k < 3; ++k) out[k] = cam.R[0][k] * v_p[0] + cam.R[1][k] * v_p[1] + cam.R[2][k] * v_p[2];
          // Sigma_c = R Sigma R^T: v_Sigma = R^T v_Sigma_c R; Sigma = M M^T: v_M = 2 v_Sigma M.
          double tmp[3][3], v_S[3][3], v_S_sym[3][3], v_M[3][3];
          mul3(v_Sc, false, cam.R, false, tmp);
          mul3(cam.R, true, tmp, false, v_S);
          for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) v_S_sym[i][k] = v_S[i][k] + v_S[k][i];
          mul3(v_S_sym, false, st.M, false, v_M);
          double v_R[3][3];
          for (int j = 0; j < 3; ++j) {
            double acc = 0;
            for (int i = 0; i < 3; ++i) {
              v_R[i][j] = v_M[i][j] * scale[j];
              acc += v_M[i][j] * st.Rq[i][j];
            }
            out[7 + j] = acc;
          }
          const double w = st.q[0], qx = st.q[1], qy = st.q[2], qz = st.q[3];
          const double dw[3][3] = {{0, -2 * qz, 2 * qy}, {2 * qz, 0, -2 * qx}, {-2 * qy, 2 * qx, 0}};
          const double dx[3][3] = {{0, 2 * qy, 2 * qz}, {2 * qy, -4 * qx, -2 * w}, {2 * qz, 2 * w, -4 * qx}};
          const double dy[3][3] = {{-4 * qy, 2 * qx, 2 * w}, {2 * qx, 0, 2 * qz}, {-2 * w, 2 * qz, -4 * qy}};
          const double dz[3][3] = {{-4 * qz, -2 * w, 2 * qx}, {2 * w, -4 * qz, 2 * qy}, {2 * qx, 2 * qy, 0}};
          double v_q[4] = {0, 0, 0, 0};
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
              v_q[0] += v_R[i][j] * dw[i][j];
              v_q[1] += v_R[i][j] * dx[i][j];
              v_q[2] += v_R[i][j] * dy[i][j];
              v_q[3] += v_R[i][j] * dz[i][j];
            }
          const double dot = v_q[0] * st.q[0] + v_q[1] * st.q[1] + v_q[2] * st.q[2] + v_q[3] * st.q[3];
          for (int k = 0; k < 4; ++k) out[3 + k] = (v_q[k] - st.q[k] * dot) / st.qnorm;
          for (int k = 0; k < 11; ++k) total[k] += out[k];
        }
        for (int k = 0; k < 3; ++k) gm[3 * n + k] = (scalar_t)total[k];
        for (int k = 0; k < 4; ++k) gq[4 * n + k] = (scalar_t)total[3 + k];
        for (int k = 0; k < 3; ++k) gs[3 * n + k] = (scalar_t)total[7 + k];
        go[n] = (scalar_t)total[10];
      }
  });
  return {v_means, v_quats, v_scales, v_opacities};
}

}  // namespace

std::vector<at::Tensor> project_forward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opacities,
                                        at::Tensor viewmats, at::Tensor Ks, int64_t width, int64_t height, double near,
                                        double far, double eps2d, bool antialiased) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    out = project_forward_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(),
                                         opacities.contiguous(), viewmats, Ks, width, height, near, far, eps2d,
                                         antialiased);
  });
  return out;
}

std::vector<at::Tensor> project_backward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opacities,
                                         at::Tensor viewmats, at::Tensor Ks, int64_t width, int64_t height,
                                         double near, double far, double eps2d, bool antialiased, at::Tensor radii,
                                         at::Tensor v_means2d, at::Tensor v_conics, at::Tensor v_depths,
                                         at::Tensor v_opac_eff) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_backward", [&] {
    out = project_backward_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(),
                                          opacities.contiguous(), viewmats, Ks, width, height, near, far, eps2d,
                                          antialiased, radii.contiguous(), v_means2d.contiguous(),
                                          v_conics.contiguous(), v_depths.contiguous(), v_opac_eff.contiguous());
  });
  return out;
}


// Returns features [C, H, W, K], final transmittance [C, H, W], n_iter [C, H, W] (int32: how far each
// pixel walked its tile list), tile_offsets [C * tiles + 1], gauss_ids [E], hit_boxes [E, 4] (uint8:
// x0, x1, y0, y1 of the tile-local pixels each entry composited into; x0 > x1 if none), splat_offsets
// [C * N + 1] (int64) and splat_entries [E] (int32): splat g's entries, in increasing tile order, are
// splat_entries[splat_offsets[g]:splat_offsets[g + 1]], and splat_records [C * N, R] (each binned splat's
// parameters and features, see RecordSlot). With with_backward_state=false (rendering without gradients) n_iter,
// hit_boxes and splat_entries are empty.
std::vector<at::Tensor> rasterize_forward(at::Tensor means2d, at::Tensor conics, at::Tensor opacities,
                                          at::Tensor features, at::Tensor extents, at::Tensor depths,
                                          int64_t width, int64_t height, int64_t tile_size,
                                          bool with_backward_state) {
  check_inputs(means2d, conics, opacities, features);
  TORCH_CHECK(tile_size >= 1 && tile_size <= 255, "rasterize_cpu: tile_size must be in [1, 255]");
  const int64_t C = means2d.size(0), K = features.size(2);
  const int tiles_x = (int)((width + tile_size - 1) / tile_size), tiles_y = (int)((height + tile_size - 1) / tile_size);
  auto opts = means2d.options();
  auto out_features = at::empty({C, height, width, K}, opts);
  auto out_T = at::empty({C, height, width}, opts);
  auto out_n = at::empty({with_backward_state ? C : 0, height, width}, opts.dtype(at::kInt));
  at::Tensor boxes;
  TileBins bins;
  auto ext = extents.contiguous();
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_forward", [&] {
    bins = bin_gaussians<scalar_t>(means2d, ext, conics, opacities, features, depths.contiguous(), (int)tile_size, tiles_x,
                                   tiles_y, (int)width, (int)height, with_backward_state);
    boxes = at::empty({with_backward_state ? bins.gauss_ids.numel() : 0, 4}, opts.dtype(at::kByte));
    int32_t* n_ptr = with_backward_state ? out_n.data_ptr<int32_t>() : nullptr;
    HitBox* box_ptr = with_backward_state ? reinterpret_cast<HitBox*>(boxes.data_ptr<uint8_t>()) : nullptr;
#if GSBENCH_HAVE_X86_SIMD
    if constexpr (std::is_same<scalar_t, float>::value) {
      if (use_simd<scalar_t>((int)tile_size)) {
        auto run = [&](auto kc) {
          forward_simd<decltype(kc)::value>(means2d, conics, opacities, features, ext, bins, (int)width, (int)height,
                                            (int)tile_size, tiles_x, tiles_y, out_features, out_T, n_ptr, box_ptr);
        };
        if (K == 4) {  // RGB + depth
          run(std::integral_constant<int, 4>());
        } else if (K == 2) {  // one feature + depth
          run(std::integral_constant<int, 2>());
        } else {
          run(std::integral_constant<int, 0>());
        }
        return;
      }
    }
#endif
    forward_impl<scalar_t>(means2d, conics, opacities, features, ext, bins, (int)width, (int)height, (int)tile_size,
                           tiles_x, tiles_y, out_features, out_T, n_ptr, box_ptr);
  });
  return {out_features, out_T, out_n, bins.tile_offsets, bins.gauss_ids, boxes, bins.splat_offsets,
          bins.splat_entries, bins.splat_records};
}

// Takes the forward's outputs from tile_offsets to splat_records; returns per-splat gradients [C, N, 8 + K]:
// mean x, mean y, conic a, b, c, opacity, |mean x|, |mean y|, then the K features.
at::Tensor rasterize_backward(at::Tensor means2d, at::Tensor conics, at::Tensor opacities, at::Tensor features,
                              at::Tensor extents, at::Tensor tile_offsets, at::Tensor gauss_ids, at::Tensor hit_boxes,
                              at::Tensor splat_offsets, at::Tensor splat_entries, at::Tensor splat_records,
                              at::Tensor final_T, at::Tensor n_iter, at::Tensor grad_features, at::Tensor grad_alpha,
                              int64_t width, int64_t height, int64_t tile_size) {
  check_inputs(means2d, conics, opacities, features);
  TORCH_CHECK(hit_boxes.size(0) == gauss_ids.size(0) && splat_entries.numel() == gauss_ids.numel() &&
                  n_iter.numel() == final_T.numel(),
              "rasterize_backward: the forward ran without backward state");
  TORCH_CHECK(splat_offsets.numel() == means2d.size(0) * means2d.size(1) + 1 &&
                  splat_records.size(0) == means2d.size(0) * means2d.size(1),
              "rasterize_backward: splat_offsets / splat_records do not match the splats");
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int tiles_x = (int)((width + tile_size - 1) / tile_size), tiles_y = (int)((height + tile_size - 1) / tile_size);
  auto gf = grad_features.contiguous();
  auto ga = grad_alpha.contiguous();
  // Every slot the reduction reads is written by the backward (entries with an empty hit box are skipped),
  // and the reduction writes every splat's row: neither needs zeroing.
  auto entry_grads = at::empty({gauss_ids.size(0), kGeomSlots + K}, means2d.options());
  auto out = at::empty({C, N, kGeomSlots + K}, means2d.options());
  auto records = splat_records.contiguous();
  const HitBox* boxes = reinterpret_cast<const HitBox*>(hit_boxes.contiguous().data_ptr<uint8_t>());
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward", [&] {
    bool done = false;
#if GSBENCH_HAVE_X86_SIMD
    if constexpr (std::is_same<scalar_t, float>::value) {
      if (use_simd<scalar_t>((int)tile_size)) {
        auto run = [&](auto kc) {
          backward_simd<decltype(kc)::value>(means2d, conics, opacities, features, extents.contiguous(), tile_offsets,
                                             gauss_ids, boxes, records, final_T, n_iter, gf, ga, (int)width, (int)height,
                                             (int)tile_size, tiles_x, tiles_y, entry_grads);
        };
        // The channel counts of RGB + depth and of one feature + depth get their own compiled loops.
        if (K == 4) {
          run(std::integral_constant<int, 4>());
        } else if (K == 2) {
          run(std::integral_constant<int, 2>());
        } else {
          run(std::integral_constant<int, 0>());
        }
        done = true;
      }
    }
#endif
    if (!done)
      backward_impl<scalar_t>(means2d, conics, opacities, features, extents.contiguous(), tile_offsets, gauss_ids,
                              boxes, records, final_T, n_iter, gf, ga, (int)width, (int)height, (int)tile_size, tiles_x,
                              tiles_y, entry_grads);
    reduce_entries<scalar_t>(entry_grads, boxes, splat_offsets.contiguous(), splat_entries.contiguous(), out);
  });
  return out;
}

// Switches the float32 SIMD path on or off (for tests and benchmarks); returns whether it was on.
bool set_simd(bool enabled) { return g_simd_enabled.exchange(enabled); }

// Whether float32 compositing runs the SIMD path on this CPU (AVX2 + FMA) with it switched on.
bool simd_active() { return g_simd_enabled.load() && cpu_has_avx2_fma(); }

TORCH_LIBRARY(gsbench_rasterize, m) {
  m.def("rasterize_forward", &rasterize_forward);
  m.def("rasterize_backward", &rasterize_backward);
  m.def("project_forward", &project_forward);
  m.def("project_backward", &project_backward);
  m.def("set_simd", &set_simd);
  m.def("simd_active", &simd_active);
}
