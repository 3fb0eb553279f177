// Everything in nn/: modules and layers, functional forms and losses, distributions, init,
// optimisers and schedules, safetensors checkpoints.
#pragma once
#include "nn/attention.h"
#include "nn/distributions.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/serialize.h"
