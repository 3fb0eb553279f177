#include <dgm/lectures/common/figures.h>

#include <cmath>

namespace dgm::lectures {

tools::Style colored(const char* color, bool dashed, double width) {
  tools::Style s;
  s.color = color, s.dashed = dashed, s.line_width = width;
  return s;
}

std::vector<double> density_curve(const std::vector<double>& xs, const std::function<double(double)>& log_density) {
  std::vector<double> p;
  p.reserve(xs.size());
  for (double x : xs) p.push_back(std::exp(log_density(x)));
  return p;
}

}  // namespace dgm::lectures
