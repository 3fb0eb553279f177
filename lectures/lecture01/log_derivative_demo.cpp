// Lecture 1, course trick 1 — the log-derivative trick, checked by autograd.
//
//   grad log f(x) = grad f(x) / f(x)
//
// and what it is for: the score-function estimator of a gradient of an expectation,
//   d/dmu E_{x ~ N(mu, 1)} f(x) = E[ f(x) * d/dmu log N(x | mu, 1) ] = E[ f(x) (x - mu) ],
// against the reparameterisation estimator (x = mu + eps, eps ~ N(0, 1)):
//   d/dmu E f(mu + eps) = E[ f'(mu + eps) ],
// and the exact value for f(x) = x^2:  d/dmu (mu^2 + 1) = 2 mu.
#include <cmath>
#include <cstdio>
#include <functional>

#include "autograd/engine.h"
#include "autograd/ops.h"

using namespace dgm;

int main() {
  manual_seed(0);
  std::printf("Log-derivative trick: grad log f = grad f / f, checked with autograd at random x in R^3\n\n");
  struct Fn {
    const char* formula;
    std::function<Tensor(const Tensor&)> f;
  };
  const Fn fns[] = {
      {"f(x) = |x|^2 + 1", [](const Tensor& x) { return sum(x * x) + 1.0; }},
      {"f(x) = exp(sin x1) (x2^2 + 1) + x3^4 + 2", [](const Tensor& x) {
         return exp(sin(select(x, 0, 0))) * (square(select(x, 0, 1)) + 1.0) + pow(select(x, 0, 2), 4.0) + 2.0;
       }},
      {"f(x) = softplus(w . x) (a density-like positive function)", [](const Tensor& x) {
         return softplus(sum(x * tensor({0.5, -1.0, 2.0}, {.dtype = DType::Float64})));
       }},
  };
  double worst = 0;
  for (const Fn& fn : fns) {
    Tensor x = randn({3}, {.dtype = DType::Float64, .requires_grad = true});
    Tensor grad_log = autograd::grad({log(fn.f(x))}, {x})[0];
    Tensor fx = fn.f(x);
    Tensor grad_f = autograd::grad({fx}, {x})[0];
    Tensor ratio = grad_f / fx.detach();
    double err = amax(abs(grad_log - ratio)).item();
    worst = std::max(worst, err);
    std::printf("  %-58s max |grad log f - grad f / f| = %.2e\n", fn.formula, err);
  }

  const double mu = 1.5;
  const int n = 100000;
  std::printf("\nWhat it is for: d/dmu E_{N(mu,1)} x^2 at mu = %.1f (exact: 2 mu = %.1f), n = %d samples\n\n", mu, 2 * mu, n);
  Tensor eps = randn({n}, {.dtype = DType::Float64});
  Tensor mu_t = tensor({mu}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor x = mu_t + eps;  // reparameterised samples: gradients flow through x
  // score function: f(x) * d/dmu log p(x | mu) per sample, with the samples held fixed;
  // autograd computes the score (x - mu) from log N(x | mu, 1) = -(x - mu)^2 / 2 + const
  Tensor xs = x.detach();
  Tensor mu_per_sample = full({n}, mu, {.dtype = DType::Float64, .requires_grad = true});
  Tensor score = autograd::grad({sum(-0.5 * square(xs - mu_per_sample))}, {mu_per_sample})[0];
  Tensor score_terms = square(xs) * score;
  Tensor reparam_terms = autograd::grad({sum(square(x))}, {x})[0];  // f'(x) per sample
  auto report = [&](const char* name, const Tensor& terms) {
    double m = mean(terms).item(), v = var(terms).item();
    std::printf("  %-26s estimate %.4f  (error %+.4f)  per-sample variance %8.3f  std. error %.4f\n", name, m, m - 2 * mu, v,
                std::sqrt(v / n));
  };
  report("score function (REINFORCE)", score_terms);
  report("reparameterisation", reparam_terms);
  std::printf("\nThe reparameterisation estimator has far lower variance; both are unbiased.\n");
  return worst < 1e-10 ? 0 : 1;
}
