// Lecture 1, course trick 1 — the log-derivative trick, checked by autograd.
//
//   grad log f(x) = grad f(x) / f(x)
//
// and what it is for: the score-function estimator of a gradient of an expectation,
//   d/dmu E_{x ~ N(mu, 1)} f(x) = E[ f(x) * d/dmu log N(x | mu, 1) ] = E[ f(x) (x - mu) ],
// against the reparameterisation estimator (x = mu + eps, eps ~ N(0, 1)):
//   d/dmu E f(mu + eps) = E[ f'(mu + eps) ],
// and the exact value for f(x) = x^2:  d/dmu (mu^2 + 1) = 2 mu.
//
// The computations live in lectures/lecture01/tricks.cpp; `lecture01_demo tricks` (soon
// `dgm lecture01 tricks`) shows this and the other course tricks in full.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lectures/lecture01/lecture01.h"

using namespace dgm::lecture01;

int main() {
  std::printf("Log-derivative trick: grad log f = grad f / f, checked with autograd at random x in R^3\n\n");
  double worst = 0;
  for (const LogDerivativeCheck& c : check_log_derivative(0)) {
    worst = std::max(worst, c.max_abs_diff);
    std::printf("  f(x) = %-52s max |grad log f - grad f / f| = %.2e\n", c.formula.c_str(), c.max_abs_diff);
  }

  const double mu = 1.5;
  const int64_t n = 100000;
  ScoreVsReparam r = score_vs_reparam(mu, 1.0, n, 1);
  std::printf("\nWhat it is for: d/dmu E_{N(mu,1)} x^2 at mu = %.1f (exact: 2 mu = %.1f), n = %lld samples\n\n", mu, 2 * mu,
              static_cast<long long>(n));
  auto report = [&](const char* name, const GradientEstimate& e) {
    std::printf("  %-26s estimate %.4f  (error %+.4f)  per-sample variance %8.3f (exact %.3f)  std. error %.4f\n", name, e.estimate,
                e.estimate - e.exact, e.variance, e.exact_variance, e.std_error);
  };
  report("score function (REINFORCE)", r.score_mu);
  report("reparameterisation", r.reparam_mu);
  std::printf("\nThe reparameterisation estimator has far lower variance; both are unbiased.\n");
  return worst < 1e-10 ? 0 : 1;
}
