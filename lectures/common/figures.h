// What the lectures' figures share: one palette (so "forward KL" is the same blue in every chapter)
// and small helpers for the curves they draw.
#pragma once
#include <functional>
#include <vector>

#include <dgm/tools/plot.h>

namespace dgm::lectures {

// The palette (matplotlib's tab10, which the course's notebooks use).
inline constexpr const char* kBlue = "#1f77b4";
inline constexpr const char* kOrange = "#ff7f0e";
inline constexpr const char* kGreen = "#2ca02c";
inline constexpr const char* kRed = "#d62728";
inline constexpr const char* kPurple = "#9467bd";
inline constexpr const char* kGrey = "#7f7f7f";

// A line style of one colour.
tools::Style colored(const char* color, bool dashed = false, double width = 1.5);

// exp(log_density(x)) at every x: a density curve from a log-density.
std::vector<double> density_curve(const std::vector<double>& xs, const std::function<double(double)>& log_density);

}  // namespace dgm::lectures
