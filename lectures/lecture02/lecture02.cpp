// Lecture 2's module table, registered in the lecture registry.
#include <dgm/lectures/lecture02/lecture02.h>

#include <dgm/tensor/errors.h>

namespace dgm::lectures {

void register_lecture02() {
  register_lecture({2,
                    "Normalizing flows",
                    {
                        // One row per module, in lecture order.
                        {{"change_of_variables", "The change of variables and the Jacobian"}, lecture02::write_change_of_variables},
                        {{"inverse", "The inverse function theorem"}, lecture02::write_inverse},
                        {{"composition", "Composing flows"}, lecture02::write_composition},
                        {{"structures", "Jacobian structures"}, lecture02::write_structures},
                        {{"linear", "Linear flows"}, lecture02::write_linear},
                        {{"autoregressive", "Gaussian autoregressive flows (MAF, IAF)"}, lecture02::write_autoregressive},
                        {{"coupling", "Coupling layers (RealNVP)"}, lecture02::write_coupling},
                        {{"seminar", "Seminar: planar and radial flows, reverse vs forward KL"}, lecture02::write_seminar},
                    }});
}

}  // namespace dgm::lectures

namespace dgm::lecture02 {

static const lectures::Lecture& lecture() {
  const lectures::Lecture* l = lectures::find_lecture(2);
  if (l == nullptr) throw ValueError("lecture 2 is not registered");
  return *l;
}

std::vector<ModuleInfo> modules() { return lecture().module_infos(); }

void run(const std::string& name, const Options& opt) { lectures::run(lecture(), name, opt); }

}  // namespace dgm::lecture02
