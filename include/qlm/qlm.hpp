// Umbrella header: everything an application needs to load a model and generate text. Tools'
// interfaces (conversion, quantization, evaluation, the file format) live in the folders beside it
// (qlm/convert/, qlm/quant/, qlm/eval/, qlm/format/, qlm/tokenizer/) and are not included here.
#pragma once

#include "qlm/activation_precision.hpp"
#include "qlm/batch.hpp"
#include "qlm/chat.hpp"
#include "qlm/chat_template.hpp"
#include "qlm/config.hpp"
#include "qlm/engine.hpp"
#include "qlm/error.hpp"
#include "qlm/generate.hpp"
#include "qlm/infill.hpp"
#include "qlm/kv_pool.hpp"
#include "qlm/kv_type.hpp"
#include "qlm/model.hpp"
#include "qlm/sampler.hpp"
#include "qlm/scheduler.hpp"
#include "qlm/session.hpp"
#include "qlm/thread_pool.hpp"
#include "qlm/tokenizer.hpp"
#include "qlm/version.hpp"
