// Compiled kernels of the synthetic rig's head renderer (capture_tools/synth/render.py).
//
// Each function does, pixel by pixel, exactly what the pure-numpy path of render.py does with whole
// arrays, in the same float32 operations and order, so both give the same images up to the last bits
// of exp/log/sqrt (and the pick between two fragments of exactly equal depth):
//   - gs_rasterize: rasterize_hits (z-buffer on each view's image plane) + HeadRenderer._drawn_faces;
//   - gs_shade: HeadRenderer._shade, with the texture lookup of cv2.remap (INTER_LINEAR,
//     BORDER_REPLICATE, 8-bit: coordinates rounded to 1/32 texel, 15-bit fixed-point weights);
//   - gs_camera_response: camera_response (exposure, white balance, sRGB table, noise, 8-bit).
// Plain C ABI (loaded with ctypes by capture_tools/synth/_kernel.py), single-threaded: the session
// already runs one worker process per core. Build with -ffp-contract=off: a fused multiply-add would
// round differently from numpy's separate multiply and add.

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

constexpr float kBoxPad = 0.05f;  // render.py _BBOX_PAD_PX

// numpy's minimum/maximum/clip on finite values (std::fmin/fmax are library calls without -ffast-math)
inline float min2(float a, float b) { return b < a ? b : a; }
inline float max2(float a, float b) { return b > a ? b : a; }
inline float clip(float value, float lo, float hi) { return min2(max2(value, lo), hi); }
inline float min3(float a, float b, float c) { return min2(min2(a, b), c); }
inline float max3(float a, float b, float c) { return max2(max2(a, b), c); }
inline int clamp_int(int value, int lo, int hi) { return value < lo ? lo : (value > hi ? hi : value); }

// cv2.remap's bilinear 8-bit lookup at one point of a [rows, cols, channels] image: the point rounded to
// 1/32 texel (cvRound: nearest, ties to even), weights (32 - f) * (32 - g) * 32 etc. summing to 2^15,
// the four texels clamped to the image (BORDER_REPLICATE), the sum rounded back to 8 bits.
struct BilinearTap {
  const uint8_t* texel[4];  // the four texels' first channel
  int weight[4];

  BilinearTap(const uint8_t* image, int rows, int cols, int channels, float x, float y) {
    const int sx = static_cast<int>(std::lrint(x * 32.0f));  // default rounding mode: ties to even
    const int sy = static_cast<int>(std::lrint(y * 32.0f));
    const int fx = sx & 31, fy = sy & 31;
    const int ix = sx >> 5, iy = sy >> 5;  // arithmetic shift = floor
    weight[0] = (32 - fx) * (32 - fy) * 32;
    weight[1] = fx * (32 - fy) * 32;
    weight[2] = (32 - fx) * fy * 32;
    weight[3] = fx * fy * 32;
    const int64_t x0 = clamp_int(ix, 0, cols - 1), x1 = clamp_int(ix + 1, 0, cols - 1);
    const int64_t y0 = clamp_int(iy, 0, rows - 1), y1 = clamp_int(iy + 1, 0, rows - 1);
    texel[0] = image + (y0 * cols + x0) * channels;
    texel[1] = image + (y0 * cols + x1) * channels;
    texel[2] = image + (y1 * cols + x0) * channels;
    texel[3] = image + (y1 * cols + x1) * channels;
  }

  int operator()(int channel) const {
    const int sum = texel[0][channel] * weight[0] + texel[1][channel] * weight[1] +
                    texel[2][channel] * weight[2] + texel[3][channel] * weight[3];
    const int value = (sum + (1 << 14)) >> 15;
    return value > 255 ? 255 : value;  // never negative
  }
};

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; _kernel.py checks it.
int gs_abi_version() { return 1; }

// First hit of every pixel ray of C views (H x W) on posed copies of a mesh (copy c seen by view c).
// Outputs: normals_f [3, C, F] unnormalized face normals; pixel_face [C*H*W] the hit triangle or -1;
// pixel_bary [C*H*W, 2] perspective-correct (u, v) of the hit (hit = (1-u-v) c0 + u c1 + v c2).
void gs_rasterize(int num_views, int num_vertices, int num_faces, int height, int width,
                  const float* points,        // [3, C, V] world
                  const int32_t* faces_t,     // [3, F]
                  const uint8_t* cullable,    // [F] skipped when facing away from the camera
                  const float* origins,       // [C, 3] camera centres
                  const float* rotation,      // [C, 3, 3] world_to_cam
                  const float* translation,   // [C, 3]
                  const float* focal,         // [C, 2]
                  const float* centre,        // [C, 2]
                  const float* radial,        // [C, 2] k1, k2
                  const float* plane,         // [2, C*H*W] image-plane x/z, y/z of each pixel's ray
                  float* normals_f, int32_t* pixel_face, float* pixel_bary) {
  const int64_t C = num_views, V = num_vertices, F = num_faces, pixels = static_cast<int64_t>(height) * width;
  struct Projected {
    float x, y, inv_z, u, v;  // image plane, 1/depth, raw (distorted) pixel
  };
  struct Fragment {
    float depth, b1, b2;  // nearest 1/z so far and its screen-space barycentrics
    int32_t face;
  };
  std::vector<Projected> projected(V);
  std::vector<float> plane_xy(2 * pixels);
  std::vector<Fragment> fragments(pixels);
  for (int64_t c = 0; c < C; ++c) {
    const float* px = points + c * V;
    const float* py = points + (C + c) * V;
    const float* pz = points + (2 * C + c) * V;
    const float* r = rotation + 9 * c;
    const float* t = translation + 3 * c;
    for (int64_t v = 0; v < V; ++v) {
      const float cam_x = r[0] * px[v] + r[1] * py[v] + r[2] * pz[v] + t[0];
      const float cam_y = r[3] * px[v] + r[4] * py[v] + r[5] * pz[v] + t[1];
      const float cam_z = r[6] * px[v] + r[7] * py[v] + r[8] * pz[v] + t[2];
      const float iz = 1.0f / cam_z;
      const float x = cam_x * iz, y = cam_y * iz;
      const float r2 = x * x + y * y;
      const float lens = 1.0f + r2 * (radial[2 * c] + r2 * radial[2 * c + 1]);
      projected[v] = {x, y, iz, focal[2 * c] * lens * x + centre[2 * c], focal[2 * c + 1] * lens * y + centre[2 * c + 1]};
    }
    for (int64_t pixel = 0; pixel < pixels; ++pixel) {
      plane_xy[2 * pixel] = plane[c * pixels + pixel];
      plane_xy[2 * pixel + 1] = plane[(C + c) * pixels + pixel];
      fragments[pixel] = {-std::numeric_limits<float>::infinity(), 0.0f, 0.0f, -1};
    }
    const float* origin = origins + 3 * c;
    for (int64_t f = 0; f < F; ++f) {
      const int32_t i0 = faces_t[f], i1 = faces_t[F + f], i2 = faces_t[2 * F + f];
      // face normal (render.face_normals) and the back-face cull of _drawn_faces
      const float e1x = px[i1] - px[i0], e1y = py[i1] - py[i0], e1z = pz[i1] - pz[i0];
      const float e2x = px[i2] - px[i0], e2y = py[i2] - py[i0], e2z = pz[i2] - pz[i0];
      const float nx = e1y * e2z - e1z * e2y, ny = e1z * e2x - e1x * e2z, nz = e1x * e2y - e1y * e2x;
      normals_f[c * F + f] = nx;
      normals_f[(C + c) * F + f] = ny;
      normals_f[(2 * C + c) * F + f] = nz;
      if (cullable[f]) {
        const float towards = nx * (origin[0] - px[i0]) + ny * (origin[1] - py[i0]) + nz * (origin[2] - pz[i0]);
        if (!(towards > 0.0f)) continue;
      }
      const Projected& q0 = projected[i0];
      const Projected& q1 = projected[i1];
      const Projected& q2 = projected[i2];
      // candidate pixels: integer pixel centres in the padded raw-pixel bounding box
      const float box_x0 = max2(std::ceil(min3(q0.u, q1.u, q2.u) - kBoxPad), 0.0f);
      const float box_y0 = max2(std::ceil(min3(q0.v, q1.v, q2.v) - kBoxPad), 0.0f);
      const float box_x1 = min2(std::floor(max3(q0.u, q1.u, q2.u) + kBoxPad), static_cast<float>(width - 1));
      const float box_y1 = min2(std::floor(max3(q0.v, q1.v, q2.v) + kBoxPad), static_cast<float>(height - 1));
      if (!(box_x0 <= box_x1) || !(box_y0 <= box_y1)) continue;  // off the image (or NaN)
      const int x_lo = static_cast<int>(box_x0), x_hi = static_cast<int>(box_x1);
      const int y_lo = static_cast<int>(box_y0), y_hi = static_cast<int>(box_y1);
      // screen-space barycentrics (b1, b2) = A (q - p0), A = inverse of [e1 e2]; 1/z is affine in them
      const float d1x = q1.x - q0.x, d1y = q1.y - q0.y;
      const float d2x = q2.x - q0.x, d2y = q2.y - q0.y;
      const float inv_det = 1.0f / (d1x * d2y - d1y * d2x);  // edge-on: inf, NaN below, never inside
      const float a11 = d2y * inv_det, a12 = -d2x * inv_det, a21 = -d1y * inv_det, a22 = d1x * inv_det;
      const float diz1 = q1.inv_z - q0.inv_z, diz2 = q2.inv_z - q0.inv_z;
      for (int y = y_lo; y <= y_hi; ++y) {
        for (int x = x_lo; x <= x_hi; ++x) {
          const int64_t pixel = static_cast<int64_t>(y) * width + x;
          const float dx = plane_xy[2 * pixel] - q0.x, dy = plane_xy[2 * pixel + 1] - q0.y;
          const float b1 = a11 * dx + a12 * dy;
          const float b2 = a21 * dx + a22 * dy;
          const float depth = q0.inv_z + b1 * diz1 + b2 * diz2;  // 1/z: larger is nearer
          Fragment& nearest = fragments[pixel];
          if ((min2(b1, b2) >= 0.0f) & (b1 + b2 <= 1.0f) & (depth > nearest.depth)) {
            nearest = {depth, b1, b2, static_cast<int32_t>(f)};
          }
        }
      }
    }
    // perspective-correct barycentrics: b_i / z_i renormalized (sum b_i / z_i = 1/z at the hit)
    int32_t* face_of = pixel_face + c * pixels;
    float* bary = pixel_bary + 2 * c * pixels;
    for (int64_t pixel = 0; pixel < pixels; ++pixel) {
      const Fragment& nearest = fragments[pixel];
      face_of[pixel] = nearest.face;
      if (nearest.face < 0) continue;
      bary[2 * pixel] = nearest.b1 * projected[faces_t[F + nearest.face]].inv_z / nearest.depth;
      bary[2 * pixel + 1] = nearest.b2 * projected[faces_t[2 * F + nearest.face]].inv_z / nearest.depth;
    }
  }
}

// Linear RGB of every hit pixel (pixel_face >= 0) written into image [C*H*W, 3]: smooth (area-weighted
// vertex) normals, albedo from the texture stack (3 sRGB-encoded albedo channels, then wrinkle maps),
// ambient sky/ground + wrapped Lambert + Blinn-Phong per light; back faces as the unlit mouth cavity.
void gs_shade(int num_views, int num_vertices, int num_faces, int height, int width,
              const float* normals_f,       // [3, C, F]
              const int32_t* faces_t,       // [3, F]
              const int32_t* pixel_face,    // [C*H*W]
              const float* pixel_bary,      // [C*H*W, 2]
              const float* to_camera,       // [3, C*H*W] unit, from the pixel towards its camera
              const float* face_table,      // [8, F] texel of corner 0, its change along u, v; specular
              const uint8_t* texture, int texture_rows, int texture_cols, int texture_channels,
              const float* decode_albedo,   // [256] sRGB code -> linear
              const float* wrinkle_weight,  // [C, channels - 3] (clipped expr / 255) or null
              int num_lights,
              const float* light_direction, // [L, 3]
              const float* light_intensity, // [L, 3]
              const float* ambient_base,    // [3] (sky + ground) / 2
              const float* ambient_slope,   // [3] (sky - ground) / 2, times the normal's y
              const float* cavity_tint,     // [3] sky / mean(sky)
              float* image) {
  const int64_t C = num_views, V = num_vertices, F = num_faces, pixels = static_cast<int64_t>(height) * width;
  const int wrinkles = texture_channels - 3;
  // area-weighted vertex normals of one view, [V, 3]
  std::vector<float> normals_v(3 * V);
  std::vector<int> active(wrinkles);  // wrinkle channels of non-zero weight in this view
  for (int64_t c = 0; c < C; ++c) {
    std::fill(normals_v.begin(), normals_v.end(), 0.0f);
    const float* nfx = normals_f + c * F;
    const float* nfy = normals_f + (C + c) * F;
    const float* nfz = normals_f + (2 * C + c) * F;
    for (int64_t f = 0; f < F; ++f) {
      for (int k = 0; k < 3; ++k) {
        float* n = normals_v.data() + 3 * static_cast<int64_t>(faces_t[k * F + f]);
        n[0] += nfx[f];
        n[1] += nfy[f];
        n[2] += nfz[f];
      }
    }
    for (int64_t v = 0; v < V; ++v) {
      float* n = normals_v.data() + 3 * v;
      const float length = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) + 1e-12f;
      n[0] /= length;
      n[1] /= length;
      n[2] /= length;
    }
    // a wrinkle map of zero weight adds exactly 0 to the darkening: skip its lookups
    const float* weight_of_view = wrinkle_weight ? wrinkle_weight + c * wrinkles : nullptr;
    int num_active = 0;
    for (int k = 0; weight_of_view != nullptr && k < wrinkles; ++k) {
      if (weight_of_view[k] != 0.0f) active[num_active++] = k;
    }
    for (int64_t local = 0; local < pixels; ++local) {
      const int64_t pixel = c * pixels + local;
      const int32_t f = pixel_face[pixel];
      if (f < 0) continue;
      const float u = pixel_bary[2 * pixel], v = pixel_bary[2 * pixel + 1];
      const float w[3] = {1.0f - u - v, u, v};
      float normal[3] = {0.0f, 0.0f, 0.0f};
      for (int k = 0; k < 3; ++k) {
        const float* n = normals_v.data() + 3 * static_cast<int64_t>(faces_t[k * F + f]);
        normal[0] += w[k] * n[0];
        normal[1] += w[k] * n[1];
        normal[2] += w[k] * n[2];
      }
      const float length = std::sqrt(normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2]) + 1e-12f;
      normal[0] /= length;
      normal[1] /= length;
      normal[2] /= length;
      const float ex = to_camera[pixel], ey = to_camera[C * pixels + pixel], ez = to_camera[2 * C * pixels + pixel];
      const float texel_x = face_table[f] + u * face_table[2 * F + f] + v * face_table[4 * F + f];
      const float texel_y = face_table[F + f] + u * face_table[3 * F + f] + v * face_table[5 * F + f];
      const float strength = face_table[6 * F + f], shininess = face_table[7 * F + f];
      const BilinearTap tap(texture, texture_rows, texture_cols, texture_channels, texel_x, texel_y);
      float albedo[3] = {decode_albedo[tap(0)], decode_albedo[tap(1)], decode_albedo[tap(2)]};
      if (num_active > 0) {
        float darkening = 0.0f;
        for (int i = 0; i < num_active; ++i) {
          darkening += static_cast<float>(tap(3 + active[i])) * weight_of_view[active[i]];
        }
        const float keep = 1.0f - clip(darkening, 0.0f, 0.9f);
        for (float& a : albedo) a *= keep;
      }
      const float facing = normal[0] * ex + normal[1] * ey + normal[2] * ez;
      float* out = image + 3 * pixel;
      if (facing < 0.0f) {  // inside the mouth: unlit
        for (int k = 0; k < 3; ++k) out[k] = 0.3f * albedo[k] * cavity_tint[k];
        continue;
      }
      float light[3], specular[3] = {0.0f, 0.0f, 0.0f};
      for (int k = 0; k < 3; ++k) light[k] = ambient_base[k] + ambient_slope[k] * normal[1];
      for (int l = 0; l < num_lights; ++l) {
        const float* d = light_direction + 3 * l;
        const float* intensity = light_intensity + 3 * l;
        const float n_dot_l = d[0] * normal[0] + d[1] * normal[1] + d[2] * normal[2];
        const float lambert = max2((n_dot_l + 0.25f) / 1.25f, 0.0f);  // wrapped diffuse
        // Blinn-Phong: n.h = (n.l + n.e) / |l + e| for unit l, e
        const float l_dot_e = d[0] * ex + d[1] * ey + d[2] * ez;
        const float n_dot_h = max2((n_dot_l + facing) / std::sqrt(max2(2.0f + 2.0f * l_dot_e, 1e-12f)), 1e-12f);
        const float highlight = lambert > 0.0f ? strength * std::exp(shininess * std::log(n_dot_h)) : 0.0f;
        for (int k = 0; k < 3; ++k) {
          light[k] += intensity[k] * lambert;
          specular[k] += intensity[k] * highlight;
        }
      }
      for (int k = 0; k < 3; ++k) out[k] = albedo[k] * light[k] + specular[k];
    }
  }
}

// Sensor + ISP of render.camera_response on count RGB pixels: table index clip(linear * gain, 0, size-1),
// value srgb[index] (+ sigma[index] * noise), 8-bit with rounding. noise and sigma may be null.
void gs_camera_response(int64_t count, const float* linear, const float* gain, const float* srgb,
                        const float* sigma, const float* noise, int table_size, uint8_t* out) {
  const float top = static_cast<float>(table_size - 1);
  for (int64_t i = 0; i < count; ++i) {
    for (int k = 0; k < 3; ++k) {
      const int64_t at = 3 * i + k;
      const float scaled = clip(linear[at] * gain[k], 0.0f, top);
      const int index = static_cast<int>(scaled);
      float encoded = srgb[index];
      if (noise != nullptr) encoded += sigma[index] * noise[at];
      encoded += 0.5f;
      encoded = clip(encoded, 0.0f, 255.0f);
      out[at] = static_cast<uint8_t>(encoded);
    }
  }
}

}  // extern "C"
