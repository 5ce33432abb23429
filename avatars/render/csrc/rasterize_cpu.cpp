// Tile-based front-to-back alpha compositing of projected 2D Gaussians on the CPU (forward + backward).
//
// The per-pixel loop is the same as 3DGS / gsplat (rasterize_to_pixels): splats sorted by depth per
// 16x16 tile, alpha = min(0.99, opacity * exp(power)), splats with alpha < 1/255 skipped, compositing
// stops before the transmittance would reach 1e-4, and the backward walks each pixel's splats back to
// front recovering T by division. Tiles are distributed over OpenMP threads (dynamic schedule).
// Backward writes per (tile, splat) entry, so no atomics are needed and memory is linear in the
// number of tile-splat entries; a final pass reduces the entries to per-splat gradients.

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
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace {

constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kAlphaMax = 0.99;
constexpr double kTransmittanceMin = 1e-4;
// Grad slots per entry before the features: mean x, mean y, conic a, b, c, opacity, |mean x|, |mean y|.
constexpr int kGeomSlots = 8;

// Below this many tile-splat entries a second thread costs more (wake-up) than it saves.
inline int num_threads_for(int64_t entries) { return entries < 4096 ? 1 : at::get_num_threads(); }

struct TileBins {
  at::Tensor tile_offsets;  // [C * tiles + 1] int64
  at::Tensor gauss_ids;     // [E] int32, depth-sorted within each tile
};

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

template <typename scalar_t>
TileBins bin_gaussians(const at::Tensor& means2d, const at::Tensor& extents, const at::Tensor& depths,
                       int tile_size, int tiles_x, int tiles_y) {
  const int64_t C = means2d.size(0), N = means2d.size(1), T = (int64_t)tiles_x * tiles_y;
  const scalar_t* m = means2d.data_ptr<scalar_t>();
  const scalar_t* e = extents.data_ptr<scalar_t>();
  const scalar_t* d = depths.data_ptr<scalar_t>();
  std::vector<int64_t> counts(C * T + 1, 0);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n) {
      int x0, x1, y0, y1;
      const int64_t g = c * N + n;
      if (!tile_rect(m + 2 * g, e + 2 * g, tile_size, tiles_x, tiles_y, x0, x1, y0, y1)) continue;
      for (int ty = y0; ty <= y1; ++ty)
        for (int tx = x0; tx <= x1; ++tx) counts[c * T + ty * tiles_x + tx + 1] += 1;
    }
  }
  std::partial_sum(counts.begin(), counts.end(), counts.begin());
  auto offsets = at::from_blob(counts.data(), {C * T + 1}, at::kLong).clone();
  auto ids = at::empty({counts.back()}, at::kInt);
  int32_t* ids_ptr = ids.data_ptr<int32_t>();
  std::vector<int64_t> cursor(counts.begin(), counts.end() - 1);
  std::vector<int32_t> order(N);
  for (int64_t c = 0; c < C; ++c) {
    std::iota(order.begin(), order.end(), 0);
    const scalar_t* dc = d + c * N;
    std::stable_sort(order.begin(), order.end(), [dc](int32_t a, int32_t b) { return dc[a] < dc[b]; });
    for (int32_t n : order) {
      int x0, x1, y0, y1;
      const int64_t g = c * N + n;
      if (!tile_rect(m + 2 * g, e + 2 * g, tile_size, tiles_x, tiles_y, x0, x1, y0, y1)) continue;
      for (int ty = y0; ty <= y1; ++ty)
        for (int tx = x0; tx <= x1; ++tx) ids_ptr[cursor[c * T + ty * tiles_x + tx]++] = n;
    }
  }
  return {offsets, ids};
}

// Per-tile copy of the splat parameters, contiguous in depth order, with each splat's pixel rectangle
// clipped to the tile: pixels whose centre lies in mean ± extent (outside it alpha < 1/255).
template <typename scalar_t>
struct TileSplats {
  std::vector<scalar_t> mx, my, ca, cb, cc, op, min_power;
  std::vector<int32_t> x0, x1, y0, y1;  // inclusive pixel bounds, tile-local
  void load(const int32_t* ids, int64_t count, int64_t base, const scalar_t* means, const scalar_t* conics,
            const scalar_t* opac, const scalar_t* extents, int tile_x0, int tile_y0, int tile_w, int tile_h) {
    for (auto* v : {&mx, &my, &ca, &cb, &cc, &op, &min_power}) v->resize(count);
    for (auto* v : {&x0, &x1, &y0, &y1}) v->resize(count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t g = base + ids[i];
      mx[i] = means[2 * g]; my[i] = means[2 * g + 1];
      ca[i] = conics[3 * g]; cb[i] = conics[3 * g + 1]; cc[i] = conics[3 * g + 2];
      op[i] = opac[g];
      // alpha >= 1/255 needs power >= -log(255 * opacity); the margin keeps this pre-test loose so
      // the exact alpha test decides, as in the reference. The rectangle gets a 0.01 px margin for
      // the same reason (it only saves work).
      min_power[i] = (scalar_t)(-std::log(op[i] / kAlphaThreshold) - 1e-3);
      const double ex = extents[2 * g] + 0.01, ey = extents[2 * g + 1] + 0.01;
      x0[i] = std::max(0, (int)std::ceil(mx[i] - ex - 0.5) - tile_x0);
      x1[i] = std::min(tile_w - 1, (int)std::floor(mx[i] + ex - 0.5) - tile_x0);
      y0[i] = std::max(0, (int)std::ceil(my[i] - ey - 0.5) - tile_y0);
      y1[i] = std::min(tile_h - 1, (int)std::floor(my[i] + ey - 0.5) - tile_y0);
    }
  }
};

// The loops run splat-outer, pixel-inner (over the splat's rectangle in the tile), keeping each
// pixel's transmittance and running sums in tile-local arrays; per pixel the arithmetic and its
// order are those of the per-pixel loop of 3DGS, so results match the reference.
template <typename scalar_t>
void forward_impl(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                  const at::Tensor& features, const at::Tensor& extents, const TileBins& bins, int width,
                  int height, int tile_size, int tiles_x, int tiles_y, at::Tensor& out_features,
                  at::Tensor& out_T, at::Tensor& out_n_iter) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y;
  const scalar_t* means = means2d.data_ptr<scalar_t>();
  const scalar_t* con = conics.data_ptr<scalar_t>();
  const scalar_t* opac = opacities.data_ptr<scalar_t>();
  const scalar_t* ext = extents.data_ptr<scalar_t>();
  const scalar_t* feat = features.data_ptr<scalar_t>();
  const int64_t* offsets = bins.tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = bins.gauss_ids.data_ptr<int32_t>();
  scalar_t* out_f = out_features.data_ptr<scalar_t>();
  scalar_t* out_t = out_T.data_ptr<scalar_t>();
  int32_t* out_n = out_n_iter.data_ptr<int32_t>();
  const int64_t gauss_ids_count = bins.gauss_ids.numel();

#pragma omp parallel num_threads(num_threads_for(gauss_ids_count))
  {
    TileSplats<scalar_t> s;
    const int P = tile_size * tile_size;
    std::vector<scalar_t> acc(P * K), Tr(P);
    std::vector<int32_t> n_iter(P);
    std::vector<uint8_t> done(P);
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < C * T; ++job) {
      const int64_t c = job / T, tile = job % T;
      const int tx0 = (int)(tile % tiles_x) * tile_size, ty0 = (int)(tile / tiles_x) * tile_size;
      const int tw = std::min(tile_size, width - tx0), th = std::min(tile_size, height - ty0);
      const int64_t start = offsets[job], count = offsets[job + 1] - start;
      s.load(ids + start, count, c * N, means, con, opac, ext, tx0, ty0, tile_size, tile_size);
      std::fill(acc.begin(), acc.end(), (scalar_t)0);
      std::fill(Tr.begin(), Tr.end(), (scalar_t)1);
      std::fill(n_iter.begin(), n_iter.end(), 0);
      std::fill(done.begin(), done.end(), 0);
      int remaining = tw * th;
      for (int64_t i = 0; i < count && remaining > 0; ++i) {
        const scalar_t* f = feat + (c * N + ids[start + i]) * K;
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
          }
        }
      }
      for (int ly = 0; ly < th; ++ly) {
        for (int lx = 0; lx < tw; ++lx) {
          const int p = ly * tile_size + lx;
          const int64_t pix = (c * height + ty0 + ly) * width + tx0 + lx;
          std::copy(acc.begin() + p * K, acc.begin() + (p + 1) * K, out_f + pix * K);
          out_t[pix] = Tr[p];
          out_n[pix] = n_iter[p];
        }
      }
    }
  }
}

template <typename scalar_t>
void backward_impl(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                   const at::Tensor& features, const at::Tensor& extents, const at::Tensor& tile_offsets,
                   const at::Tensor& gauss_ids, const at::Tensor& final_T, const at::Tensor& n_iter,
                   const at::Tensor& grad_features, const at::Tensor& grad_alpha, int width, int height,
                   int tile_size, int tiles_x, int tiles_y, at::Tensor& entry_grads) {
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int64_t T = (int64_t)tiles_x * tiles_y, G = kGeomSlots + K;
  const scalar_t* means = means2d.data_ptr<scalar_t>();
  const scalar_t* con = conics.data_ptr<scalar_t>();
  const scalar_t* opac = opacities.data_ptr<scalar_t>();
  const scalar_t* ext = extents.data_ptr<scalar_t>();
  const scalar_t* feat = features.data_ptr<scalar_t>();
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = gauss_ids.data_ptr<int32_t>();
  const scalar_t* fT = final_T.data_ptr<scalar_t>();
  const int32_t* nit = n_iter.data_ptr<int32_t>();
  const scalar_t* gf = grad_features.data_ptr<scalar_t>();
  const scalar_t* ga = grad_alpha.data_ptr<scalar_t>();
  scalar_t* eg = entry_grads.data_ptr<scalar_t>();
  const int64_t gauss_ids_count = gauss_ids.numel();

#pragma omp parallel num_threads(num_threads_for(gauss_ids_count))
  {
    TileSplats<scalar_t> s;
    const int P = tile_size * tile_size;
    std::vector<scalar_t> behind(P * K), Tr(P), T_final(P), g_alpha_out(P), g_pix(P * K);
    std::vector<int32_t> n_it(P);
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < C * T; ++job) {
      const int64_t c = job / T, tile = job % T;
      const int tx0 = (int)(tile % tiles_x) * tile_size, ty0 = (int)(tile / tiles_x) * tile_size;
      const int tw = std::min(tile_size, width - tx0), th = std::min(tile_size, height - ty0);
      const int64_t start = offsets[job], count = offsets[job + 1] - start;
      if (count == 0) continue;
      s.load(ids + start, count, c * N, means, con, opac, ext, tx0, ty0, tile_size, tile_size);
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
        const scalar_t* f = feat + (c * N + ids[start + i]) * K;
        scalar_t* e = eg + (start + i) * G;
        const int x1 = std::min(s.x1[i], tw - 1), y1 = std::min(s.y1[i], th - 1);
        for (int ly = s.y0[i]; ly <= y1; ++ly) {
          const scalar_t dy = s.my[i] - ((scalar_t)(ty0 + ly) + (scalar_t)0.5);
          for (int lx = s.x0[i]; lx <= x1; ++lx) {
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
  }
}

template <typename scalar_t>
void reduce_entries(const at::Tensor& entry_grads, const at::Tensor& tile_offsets,
                    const at::Tensor& gauss_ids, int64_t C, int64_t N, int64_t T, at::Tensor& out) {
  const int64_t G = entry_grads.size(1);
  const scalar_t* eg = entry_grads.data_ptr<scalar_t>();
  const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  const int32_t* ids = gauss_ids.data_ptr<int32_t>();
  scalar_t* o = out.data_ptr<scalar_t>();
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t e = offsets[c * T]; e < offsets[(c + 1) * T]; ++e) {
        scalar_t* dst = o + (c * N + ids[e]) * G;
        const scalar_t* src = eg + e * G;
        for (int64_t k = 0; k < G; ++k) dst[k] += src[k];
      }
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

}  // namespace

// Returns features [C, H, W, K], final transmittance [C, H, W], n_iter [C, H, W] (int32: how far each
// pixel walked its tile list), tile_offsets [C * tiles + 1], gauss_ids [E].
std::vector<at::Tensor> rasterize_forward(at::Tensor means2d, at::Tensor conics, at::Tensor opacities,
                                             at::Tensor features, at::Tensor extents, at::Tensor depths,
                                             int64_t width, int64_t height, int64_t tile_size) {
  check_inputs(means2d, conics, opacities, features);
  const int64_t C = means2d.size(0), K = features.size(2);
  const int tiles_x = (int)((width + tile_size - 1) / tile_size), tiles_y = (int)((height + tile_size - 1) / tile_size);
  auto opts = means2d.options();
  auto out_features = at::empty({C, height, width, K}, opts);
  auto out_T = at::empty({C, height, width}, opts);
  auto out_n = at::empty({C, height, width}, opts.dtype(at::kInt));
  TileBins bins;
  auto ext = extents.contiguous();
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_forward", [&] {
    bins = bin_gaussians<scalar_t>(means2d, ext, depths.contiguous(), (int)tile_size, tiles_x,
                                   tiles_y);
    forward_impl<scalar_t>(means2d, conics, opacities, features, ext, bins, (int)width, (int)height, (int)tile_size,
                           tiles_x, tiles_y, out_features, out_T, out_n);
  });
  return {out_features, out_T, out_n, bins.tile_offsets, bins.gauss_ids};
}

// Returns per-splat gradients [C, N, 8 + K]: mean x, mean y, conic a, b, c, opacity, |mean x|, |mean y|,
// then the K features.
at::Tensor rasterize_backward(at::Tensor means2d, at::Tensor conics, at::Tensor opacities,
                                 at::Tensor features, at::Tensor extents, at::Tensor tile_offsets,
                                 at::Tensor gauss_ids,
                                 at::Tensor final_T, at::Tensor n_iter, at::Tensor grad_features,
                                 at::Tensor grad_alpha, int64_t width, int64_t height, int64_t tile_size) {
  check_inputs(means2d, conics, opacities, features);
  const int64_t C = means2d.size(0), N = means2d.size(1), K = features.size(2);
  const int tiles_x = (int)((width + tile_size - 1) / tile_size), tiles_y = (int)((height + tile_size - 1) / tile_size);
  auto gf = grad_features.contiguous();
  auto ga = grad_alpha.contiguous();
  auto entry_grads = at::zeros({gauss_ids.size(0), kGeomSlots + K}, means2d.options());
  auto out = at::zeros({C, N, kGeomSlots + K}, means2d.options());
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward", [&] {
    backward_impl<scalar_t>(means2d, conics, opacities, features, extents.contiguous(), tile_offsets, gauss_ids, final_T, n_iter, gf, ga,
                            (int)width, (int)height, (int)tile_size, tiles_x, tiles_y, entry_grads);
    reduce_entries<scalar_t>(entry_grads, tile_offsets, gauss_ids, C, N, (int64_t)tiles_x * tiles_y, out);
  });
  return out;
}

TORCH_LIBRARY(gsbench_rasterize, m) {
  m.def("rasterize_forward", &rasterize_forward);
  m.def("rasterize_backward", &rasterize_backward);
}
