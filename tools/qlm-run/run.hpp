// qlm-run's pieces: its options, and the modes (plain prompt, chat, infill) that share them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <qlm/chat.hpp>
#include <qlm/generate.hpp>
#include <qlm/model.hpp>
#include <qlm/sampler.hpp>
#include <qlm/session.hpp>

namespace qlm::run {

/// Everything the command line sets.
struct Args {
  std::string model, prompt, prompt_file;
  int n_predict = 128;
  SamplerOptions sampling;
  int threads = 0;
  std::uint32_t context = 0;
  std::vector<std::string> stop;
  bool reference = false;
  bool ignore_eos = false;
  bool no_mmap = false;
  std::string kv_type = "f32";
  std::string activations = "auto";
  bool dump_prompt = false;
  // --chat
  bool chat = false;
  std::string system, chat_template, messages_file;
  // --infill
  bool infill = false;
  std::string fim_prefix, fim_suffix, infill_file, cursor, repo_name;
  std::vector<std::string> extra;
  bool spm_infill = false;
};

/// Prints "qlm-run: <message>" to stderr; returns the exit status 1.
int fail(const std::string& message);

/// A session with the command line's settings, or the error printed (nullopt).
std::optional<Session> make_session(const Args& a, std::shared_ptr<const Model> model);
/// GenerateOptions of the command line, streaming text to stdout.
GenerateOptions generate_options(const Args& a);
/// The speed line on stderr, and a note when the context filled up.
void print_stats(const GenerateResult& r, const Session& session);
/// --dump-prompt: one JSON line {"prompt": text, "tokens": ids} on stdout; returns 0.
int dump_prompt(const std::string& text, std::span<const std::int32_t> tokens);

/// --chat: answers --messages once, or talks on the terminal until end of input.
int run_chat(const Args& a, std::shared_ptr<const Model> model);
/// --infill: completes at a cursor between a prefix and a suffix.
int run_infill(const Args& a, std::shared_ptr<const Model> model);

}  // namespace qlm::run
