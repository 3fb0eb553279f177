// Lecture 1's module table, registered in the lecture registry.
#include <dgm/lectures/lecture01/lecture01.h>

#include <dgm/tensor/errors.h>

namespace dgm::lectures {

void register_lecture01() {
  register_lecture({1,
                    "Generative models, autoregressive modelling",
                    {
                        // One row per module, in lecture order. A new chapter adds its row here.
                        {{"tricks", "Course tricks"}, lecture01::write_tricks},
                        {{"histograms", "Problem statement and histograms"}, lecture01::write_histograms},
                        {{"divergences", "Divergences and MLE"}, lecture01::write_divergences},
                        {{"autoregressive", "Autoregressive modelling"}, lecture01::write_autoregressive},
                        {{"conditional", "Conditional models and Bayes' rule"}, lecture01::write_conditional},
                    }});
}

}  // namespace dgm::lectures

namespace dgm::lecture01 {

static const lectures::Lecture& lecture() {
  const lectures::Lecture* l = lectures::find_lecture(1);
  if (l == nullptr) throw ValueError("lecture 1 is not registered");
  return *l;
}

std::vector<ModuleInfo> modules() { return lecture().module_infos(); }

void run(const std::string& name, const Options& opt) { lectures::run(lecture(), name, opt); }

}  // namespace dgm::lecture01
