// Lecture 2 of R. Isachenko's Deep Generative Models course, "Normalizing flows", as runnable,
// tested chapters:
//
//   change_of_variables  a density pushed through maps, checked against closed forms, integrated to 1
//   inverse              the inverse function theorem: J_{f^-1} = J_f^{-1}, |det J| the volume ratio
//   composition          a flow of many layers: the log-dets add up
//   structures           permutation, elementwise, triangular Jacobians and what their det costs
//   linear               LU / QR linear flows; the sign of det W cannot change continuously
//   autoregressive       Gaussian AR flows: MAF (one-pass density, sequential sampling) and IAF
//   coupling             RealNVP coupling layers: one pass both ways
//   seminar              planar and radial flows fitted by reverse KL; forward vs reverse KL
//
// The claims are functions returning numbers (jacobians.h, flow_models.h), checked in
// tests/test_lecture02.cpp; the chapters print them and draw the figures.
//
//   dgm::lecture02::run("coupling", {.out_dir = "runs/lecture02"});   // or `dgm lecture 2 coupling`
#pragma once
#include <string>
#include <vector>

#include <dgm/lectures/common/chapter.h>
#include <dgm/lectures/common/lecture.h>
#include <dgm/lectures/lecture02/flow_models.h>
#include <dgm/lectures/lecture02/jacobians.h>

namespace dgm::lecture02 {

using lectures::Chapter;
using lectures::ModuleInfo;
using lectures::Options;
using lectures::strf;
using lectures::Table;

void write_change_of_variables(Chapter& ch);
void write_inverse(Chapter& ch);
void write_composition(Chapter& ch);
void write_structures(Chapter& ch);
void write_linear(Chapter& ch);
void write_autoregressive(Chapter& ch);
void write_coupling(Chapter& ch);
void write_seminar(Chapter& ch);

std::vector<ModuleInfo> modules();
void run(const std::string& name, const Options& opt);

}  // namespace dgm::lecture02
