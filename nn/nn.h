// Everything in nn/: modules and layers, functional forms and losses, distributions, init,
// optimisers and schedules, safetensors checkpoints.
#pragma once
#include <dgm/nn/attention.h>
#include <dgm/nn/distributions.h>
#include <dgm/nn/functional.h>
#include <dgm/nn/init.h>
#include <dgm/nn/layers.h>
#include <dgm/nn/module.h>
#include <dgm/nn/optim.h>
#include <dgm/nn/serialize.h>
