// The LSTM recurrence of K members on a CPU, forward and backward, one member at a time.
//
// Members do not interact, so each one runs its whole sequence before the next: its recurrent
// weight (4 KB at hidden 16) and state stay in the L1 cache while the gates of one row are
// computed, activated and used in registers. Torch's operations instead make one pass over all
// K members' memory per operation and time step, which at the grammar study's sizes costs more
// than the arithmetic (BENCHMARKS.md, issue 18). Loaded by rnnbench.native.
//
// Layouts, member-major and contiguous (K members, T steps, B rows, H hidden units, G = 4 H,
// gates i, f, g, o as nn.LSTM orders them):
//   xw    [K, T, B, G]  input projections with both biases      w_hh  [K, G, H]  as nn.LSTM's
//   table [K, V, G]     or, for a first layer, each member's input table, with ids [K, T, B]
//   acts  [K, T, B, G]  the gates' activations                  cs, tanh_cs, hs  [K, T, B, H]

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <bit>
#include <optional>
#include <vector>

namespace {

// exp without branches, so loops over gates vectorize: 2^n p(r) with x = n ln 2 + r, |r| <= ln 2 / 2,
// and Cephes' degree-6 polynomial for expf (relative error ~1e-7). NaN stays NaN (comparisons with
// NaN are false, and the last line passes it through); beyond +-88 it saturates as expf nearly does.
inline float exp_(float x) {
  float y = x > 88.3762626647949f ? 88.3762626647949f : x;
  y = y < -87.3365447504f ? -87.3365447504f : y;
  const float n = __builtin_floorf(y * 1.44269504088896341f + 0.5f);
  float r = y - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float e = p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x != x ? x : e;
}

inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }
inline float tanh_(float x) { return 2.0f * sigmoid_(2.0f * x) - 1.0f; }

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
}


// One row (one sequence of one member) one time step forward: the gates' pre-activations
// x + h_{t-1} W_hh^T (wt is W_hh transposed, [H, 4H]), their activations, c_t, tanh(c_t) and h_t.
// `__restrict`: the arrays never overlap, which lets the compiler vectorize every loop.
template <int64_t HC>
void forward_row(const float* __restrict x, const float* __restrict h_prev, const float* __restrict wt,
                 const float* __restrict c_prev, float* __restrict a, float* __restrict c, float* __restrict tc,
                 float* __restrict h, int64_t hidden) {
  const int64_t H = HC ? HC : hidden, G = 4 * H;
  for (int64_t g = 0; g < G; ++g) a[g] = x[g];
  for (int64_t j = 0; j < H; ++j)
    for (int64_t g = 0; g < G; ++g) a[g] += h_prev[j] * wt[j * G + g];
  for (int64_t g = 0; g < 2 * H; ++g) a[g] = sigmoid_(a[g]);
  for (int64_t g = 2 * H; g < 3 * H; ++g) a[g] = tanh_(a[g]);
  for (int64_t g = 3 * H; g < G; ++g) a[g] = sigmoid_(a[g]);
  for (int64_t j = 0; j < H; ++j) {
    c[j] = a[H + j] * c_prev[j] + a[j] * a[2 * H + j];
    tc[j] = tanh_(c[j]);
    h[j] = a[3 * H + j] * tc[j];
  }
}

// One row one time step backward: dh_t (dL/dh_t from above plus W_hh^T d_{t+1}, w is W_hh [4H, H])
// and dc_{t+1} f_{t+1} in `dc` (replaced by dc_t f_t) → d_t, the gates' pre-activation gradient.
template <int64_t HC>
void backward_row(const float* __restrict grad_h, const float* __restrict d_next, const float* __restrict w,
                  const float* __restrict a, const float* __restrict c_prev, const float* __restrict tc,
                  float* __restrict dc, float* __restrict dh, float* __restrict d, int64_t hidden) {
  const int64_t H = HC ? HC : hidden, G = 4 * H;
  // four partial sums over the gates, so that four chains of multiply-adds run side by side
  float* __restrict part = dh + H;
  for (int64_t j = 0; j < 4 * H; ++j) part[j] = 0.0f;
  for (int64_t g = 0; g < G; g += 4)
    for (int64_t j = 0; j < H; ++j) {
      part[j] += d_next[g] * w[g * H + j];
      part[H + j] += d_next[g + 1] * w[(g + 1) * H + j];
      part[2 * H + j] += d_next[g + 2] * w[(g + 2) * H + j];
      part[3 * H + j] += d_next[g + 3] * w[(g + 3) * H + j];
    }
  for (int64_t j = 0; j < H; ++j) dh[j] = grad_h[j] + ((part[j] + part[H + j]) + (part[2 * H + j] + part[3 * H + j]));
  for (int64_t j = 0; j < H; ++j) {
    const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const float dc_t = dc[j] + dh[j] * o * (1.0f - tc[j] * tc[j]);
    d[j] = dc_t * g * i * (1.0f - i);
    d[H + j] = dc_t * c_prev[j] * f * (1.0f - f);
    d[2 * H + j] = dc_t * i * (1.0f - g * g);
    d[3 * H + j] = dh[j] * tc[j] * o * (1.0f - o);
    dc[j] = dc_t * f;
  }
}

// dW_hh^T += h_{t-1}^T d_t for one member and time step: h_prev [B, H], d [B, 4H], gwt [H, 4H]. Row
// j of gwt (4 vector registers at H = 16) takes all B rows' contributions before it is stored.
template <int64_t HC>
void weight_grad_step(const float* __restrict h_prev, const float* __restrict d, float* __restrict gwt, int64_t B,
                      int64_t hidden) {
  const int64_t H = HC ? HC : hidden, G = 4 * H;
  for (int64_t j = 0; j < H; ++j) {
    float* __restrict acc = gwt + j * G;
    for (int64_t b = 0; b < B; ++b) {
      const float hj = h_prev[b * H + j];
      for (int64_t g = 0; g < G; ++g) acc[g] += hj * d[b * G + g];
    }
  }
}

// The row function for hidden size H: compiled for that size when it is a common one (the loops
// then unroll: 1.6x faster at H = 16), else for any size.
template <template <int64_t> class Row>
auto for_hidden(int64_t H) {
  switch (H) {
    case 8: return Row<8>::run;
    case 16: return Row<16>::run;
    case 32: return Row<32>::run;
    case 64: return Row<64>::run;
    default: return Row<0>::run;
  }
}
template <int64_t HC> struct Forward { static constexpr auto run = forward_row<HC>; };
template <int64_t HC> struct Backward { static constexpr auto run = backward_row<HC>; };
template <int64_t HC> struct WeightGrad { static constexpr auto run = weight_grad_step<HC>; };

void transpose(const float* __restrict from, float* __restrict to, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < cols; ++q) to[q * rows + r] = from[r * cols + q];
}

}  // namespace

// The sizes of a call: K members, T steps, B rows, H hidden units, and, with ids, V rows of a
// member's input table.
struct Sizes {
  int64_t K, T, B, H, V;
};

// x is either the input projections xw [K, T, B, 4H] (ids absent) or, for the first layer, each
// member's input table [K, V, 4H] (embedding @ W_ih^T + biases) with ids [K, T, B], the member-local
// token ids: row (k, t, b) then reads table[k, ids[k, t, b]], and xw is never made.
Sizes sizes_of(const torch::Tensor& x, const torch::Tensor& w_hh, const std::optional<torch::Tensor>& ids) {
  check(x, "x");
  check(w_hh, "w_hh");
  const int64_t K = w_hh.size(0), G = w_hh.size(1), H = w_hh.size(2);
  TORCH_CHECK(G == 4 * H && x.size(0) == K && x.size(-1) == G, "w_hh must be [K, 4H, H] and x [K, ..., 4H]");
  if (!ids) return {K, x.size(1), x.size(2), H, 0};
  TORCH_CHECK(ids->scalar_type() == torch::kLong && ids->is_contiguous() && ids->dim() == 3 && ids->size(0) == K,
              "ids must be contiguous int64 [K, T, B]");
  return {K, ids->size(1), ids->size(2), H, x.size(1)};
}

std::vector<torch::Tensor> lstm_forward(torch::Tensor x, torch::Tensor w_hh, std::optional<torch::Tensor> ids) {
  const auto [K, T, B, H, V] = sizes_of(x, w_hh, ids);
  const int64_t G = 4 * H;
  auto acts = x.new_empty({K, T, B, G});
  auto cs = x.new_empty({K, T, B, H}), tanh_cs = torch::empty_like(cs), hs = torch::empty_like(cs);
  const float *x0 = x.data_ptr<float>(), *w0 = w_hh.data_ptr<float>();
  const int64_t* id0 = ids ? ids->data_ptr<int64_t>() : nullptr;
  float *a0 = acts.data_ptr<float>(), *c0 = cs.data_ptr<float>(), *tc0 = tanh_cs.data_ptr<float>(), *h0 = hs.data_ptr<float>();
  const auto row_fn = for_hidden<Forward>(H);
  at::parallel_for(0, K, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> wt(H * G), zeros(H, 0.0f);  // W_hh transposed; h_{-1} and c_{-1}
    for (int64_t k = begin; k < end; ++k) {
      transpose(w0 + k * G * H, wt.data(), G, H);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < B; ++b) {
          const int64_t row = (k * T + t) * B + b, before = row - B;  // (t - 1, b) of the same member
          const float* xr = id0 ? x0 + (k * V + id0[row]) * G : x0 + row * G;
          const float* h_prev = t > 0 ? h0 + before * H : zeros.data();
          const float* c_prev = t > 0 ? c0 + before * H : zeros.data();
          row_fn(xr, h_prev, wt.data(), c_prev, a0 + row * G, c0 + row * H, tc0 + row * H, h0 + row * H, H);
        }
    }
  });
  return {hs, cs, tanh_cs, acts};
}

// Gradients of x (xw's, or with ids the input table's) and of w_hh, from dL/dh_t (`grad_hs`, from
// the layers above only; the recurrent part is added here) and what the forward returned.
std::vector<torch::Tensor> lstm_backward(torch::Tensor grad_hs, torch::Tensor x, torch::Tensor w_hh,
                                         std::optional<torch::Tensor> ids, torch::Tensor hs, torch::Tensor cs,
                                         torch::Tensor tanh_cs, torch::Tensor acts) {
  const auto [K, T, B, H, V] = sizes_of(x, w_hh, ids);
  const int64_t G = 4 * H;
  for (auto& [t, name] : {std::pair{&grad_hs, "grad_hs"}, {&hs, "hs"}, {&cs, "cs"}, {&tanh_cs, "tanh_cs"}, {&acts, "acts"}})
    check(*t, name);
  auto grad_x = ids ? torch::zeros_like(x) : torch::empty_like(x), grad_w = torch::empty_like(w_hh);
  const float *gh0 = grad_hs.data_ptr<float>(), *w0 = w_hh.data_ptr<float>(), *h0 = hs.data_ptr<float>();
  const float *c0 = cs.data_ptr<float>(), *tc0 = tanh_cs.data_ptr<float>(), *a0 = acts.data_ptr<float>();
  const int64_t* id0 = ids ? ids->data_ptr<int64_t>() : nullptr;
  float *gx0 = grad_x.data_ptr<float>(), *gw0 = grad_w.data_ptr<float>();
  const auto row_fn = for_hidden<Backward>(H);
  const auto weight_fn = for_hidden<WeightGrad>(H);
  at::parallel_for(0, K, 1, [&](int64_t begin, int64_t end) {
    // the member's dW_hh transposed [H, 4H]; d of the steps t + 1 and t, [B, 4H] each; dc_{t+1} f_{t+1}
    // of every row; dh_t of one row (and room for its partial sums); zeros for d_T and c_{-1}
    std::vector<float> gwt(H * G), d_next(B * G), d_now(B * G), dc(B * H), dh(5 * H), zeros(G, 0.0f);
    for (int64_t k = begin; k < end; ++k) {
      std::fill(gwt.begin(), gwt.end(), 0.0f);
      std::fill(dc.begin(), dc.end(), 0.0f);
      for (int64_t t = T - 1; t >= 0; --t) {
        for (int64_t b = 0; b < B; ++b) {
          const int64_t row = (k * T + t) * B + b;
          const float* c_prev = t > 0 ? c0 + (row - B) * H : zeros.data();
          const float* dn = t < T - 1 ? d_next.data() + b * G : zeros.data();
          float* d = d_now.data() + b * G;
          row_fn(gh0 + row * H, dn, w0 + k * G * H, a0 + row * G, c_prev, tc0 + row * H, dc.data() + b * H, dh.data(), d, H);
          float* gx = id0 ? gx0 + (k * V + id0[row]) * G : gx0 + row * G;
          for (int64_t g = 0; g < G; ++g) gx[g] = id0 ? gx[g] + d[g] : d[g];
        }
        if (t > 0) weight_fn(h0 + (k * T + t - 1) * B * H, d_now.data(), gwt.data(), B, H);
        std::swap(d_next, d_now);
      }
      transpose(gwt.data(), gw0 + k * G * H, H, G);
    }
  });
  return {grad_x, grad_w};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstm_forward, "LSTM recurrence of K members: x, w_hh, ids -> hs, cs, tanh_cs, acts");
  m.def("backward", &lstm_backward, "its backward: grad_hs, x, w_hh, ids, hs, cs, tanh_cs, acts -> d x, d w_hh");
}
