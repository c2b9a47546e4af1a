// Umbrella header: everything an application needs to load a model and generate text.
#pragma once

#include "qlm/config.hpp"
#include "qlm/convert.hpp"
#include "qlm/error.hpp"
#include "qlm/generate.hpp"
#include "qlm/kv_cache.hpp"
#include "qlm/model.hpp"
#include "qlm/sampler.hpp"
#include "qlm/session.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/version.hpp"
