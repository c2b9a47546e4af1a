// qlm-server: a local OpenAI-compatible server (plus llama.cpp's /infill) over one .qlm model,
// with continuous batching and prefix reuse from qlm's Scheduler. Three threads: HTTP I/O, the
// scheduler's steps (over the engine's own compute threads), and main, which loads the model and
// then waits for SIGINT/SIGTERM to drain and stop (docs/serving.md).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <qlm/chat.hpp>
#include <qlm/model.hpp>
#include <qlm/scheduler.hpp>
#include <thread>

#include "api.hpp"
#include "cli_util.hpp"
#include "http_server.hpp"

namespace {

using namespace qlm;
using namespace qlm::server;

struct Args {
  std::string model, host = "127.0.0.1", chat_template, alias, api_key, kv_type = "f16", kv_pool;
  int port = 8080, threads = 0;
  std::uint32_t parallel = 4, queue = 64, context = 0, step_tokens = 256;
  std::uint64_t max_body = std::uint64_t{8} << 20;
  std::int32_t max_tokens = 0;
  double timeout = 30.0, keep_alive = 10.0, drain = 10.0;
  std::size_t max_connections = 1024;
  bool no_mmap = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "qlm-server: %s\n", message.c_str());
  return 1;
}

// "512M", "2G", "1048576": bytes, with an optional binary K/M/G suffix.
std::optional<std::uint64_t> parse_bytes(const std::string& s) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = s.substr(used);
  int shift = 0;
  if (unit == "K" || unit == "KiB" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (!unit.empty())
    return std::nullopt;
  if (n > (std::uint64_t{1} << (62 - shift))) return std::nullopt;
  return static_cast<std::uint64_t>(n) << shift;
}

// Room for `parallel` sequences of the whole context, when --kv-pool is not given.
std::uint64_t default_pool_bytes(const ModelConfig& c, std::uint32_t context, KvType type,
                                 std::uint32_t parallel, std::uint32_t step_tokens) {
  return std::uint64_t{kv_sequence_bytes(c, type, context, step_tokens)} * parallel;
}

void add_options(CLI::App& app, Args& a) {
  app.add_option("-m,--model", a.model, ".qlm model file")->required();
  app.add_option("-t,--threads", a.threads, "compute threads (default: all cores)")
      ->check(qlm::tools::whole_number(0, 1024));
  app.add_option("--host", a.host, "address to bind (default 127.0.0.1: this machine only)");
  app.add_option("--port", a.port, "port (0 picks a free one; default 8080)")
      ->check(qlm::tools::whole_number(0, 65535));
  app.add_option("-P,--parallel", a.parallel, "requests served at once (default 4)")
      ->check(qlm::tools::whole_number(1, 256));
  app.add_option("--queue", a.queue, "requests waiting beyond those; more get 503 (default 64)")
      ->check(qlm::tools::whole_number(0, 1 << 16));
  app.add_option("-c,--ctx-size", a.context, "tokens per sequence (default: min(trained, 4096))")
      ->check(qlm::tools::whole_number(0, 1 << 20));
  app.add_option("--kv-pool", a.kv_pool,
                 "KV pool bytes, e.g. 2G (default: --parallel sequences of the whole context)");
  app.add_option("--kv-type", a.kv_type, "KV element type: f16 (default) or f32");
  app.add_option("--step-tokens", a.step_tokens,
                 "tokens per scheduler step: one per running choice, the rest prompt chunks")
      ->check(qlm::tools::whole_number(2, 1 << 16));
  app.add_option("--chat-template", a.chat_template,
                 "a template the model stores, a built-in (chatml) or a Jinja file");
  app.add_option("--alias", a.alias, "the model's id in the API (default: the file's base name)");
  app.add_option("--api-key", a.api_key, "require 'Authorization: Bearer KEY'");
  app.add_option("--max-body", a.max_body, "largest request body in bytes (default 8 MiB)")
      ->check(qlm::tools::whole_number(1024, 1LL << 32));
  app.add_option("--max-tokens", a.max_tokens,
                 "most tokens one request may generate (default: up to the context)")
      ->check(qlm::tools::whole_number(0, 1 << 30));
  app.add_option("--timeout", a.timeout,
                 "seconds a request may take to arrive once begun (default 30; then 408)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--keep-alive", a.keep_alive,
                 "seconds an idle connection is kept open (default 10)")
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--drain-timeout", a.drain,
                 "seconds running requests get to finish after SIGINT/SIGTERM (default 10)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--max-connections", a.max_connections, "open connections (default 1024)")
      ->check(qlm::tools::whole_number(1, 1 << 20));
  app.add_flag("--no-mmap", a.no_mmap, "read the model into memory instead of mapping it");
}

struct Loaded {
  std::shared_ptr<const Model> model;
  std::unique_ptr<Scheduler> scheduler;
  Backend backend;
};

Result<Loaded> load(const Args& a, const qlm::tools::IntegrityOptions& integrity) {
  auto model = Model::open(
      a.model,
      {.verify_checksums = integrity.verify, .mmap = !a.no_mmap, .trusted_keys = integrity.keys()});
  if (!model) return model.error();
  const auto kv = parse_kv_type(a.kv_type);
  if (!kv) return Error{ErrorCode::InvalidArgument, "--kv-type must be f16 or f32"};
  EngineOptions engine{.context = a.context, .kv_type = *kv, .threads = a.threads};
  const std::uint32_t context =
      a.context ? a.context
                : std::min<std::uint32_t>((*model)->config().max_position_embeddings
                                              ? (*model)->config().max_position_embeddings
                                              : 4096,
                                          4096);
  const std::uint32_t step_tokens = std::max(a.step_tokens, a.parallel * 16 + 1);
  if (a.kv_pool.empty()) {
    engine.kv_bytes = default_pool_bytes((*model)->config(), context, *kv, a.parallel, step_tokens);
  } else if (auto bytes = parse_bytes(a.kv_pool)) {
    engine.kv_bytes = *bytes;
  } else {
    return Error{ErrorCode::InvalidArgument, "--kv-pool '" + a.kv_pool + "' is not a byte count"};
  }
  SchedulerOptions so{.step_tokens = step_tokens, .max_running = a.parallel, .max_queue = a.queue};
  auto scheduler = Scheduler::create(*model, engine, so);
  if (!scheduler) return scheduler.error();
  Loaded l;
  l.model = *model;
  l.scheduler = std::make_unique<Scheduler>(std::move(*scheduler));
  l.backend.model = l.model;
  l.backend.scheduler = l.scheduler.get();
  l.backend.context = l.scheduler->engine().context_size();
  const Tokenizer& tok = l.model->tokenizer();
  if (!a.chat_template.empty()) {
    auto t = find_chat_template(tok, a.chat_template);
    if (!t) return t.error();
    l.backend.chat = std::move(*t);
  } else if (auto t = model_chat_template(tok)) {
    l.backend.chat = std::move(*t);
  } else {
    l.backend.no_chat_reason =
        "this model has no chat template: start qlm-server with --chat-template NAME|FILE (e.g. "
        "chatml), or use /v1/completions";
  }
  return l;
}

// Waits for SIGINT/SIGTERM, then drains: no new connections, running requests get the drain time,
// then the rest are cancelled (their streams end cleanly), and everything stops.
void wait_and_drain(const sigset_t& signals, HttpServer& http, Api& api, Scheduler* scheduler,
                    double drain_seconds) {
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "qlm-server: %s: finishing %zu running requests\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", http.busy());
  http.stop_accepting();
  const auto until = Clock::now() + std::chrono::duration<double>(drain_seconds);
  while (http.busy() > 0 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (scheduler && http.busy() > 0) {
    api.cancel_all();
    const auto grace = Clock::now() + std::chrono::seconds(5);
    while (http.busy() > 0 && Clock::now() < grace) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // last bytes out
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serve a .qlm model over HTTP: OpenAI's API and llama.cpp's /infill"};
  Args a;
  qlm::tools::IntegrityOptions integrity;
  add_options(app, a);
  integrity.add_to(app);
  CLI11_PARSE(app, argc, argv);
  if (a.alias.empty()) a.alias = std::filesystem::path(a.model).filename().string();

  // Every thread started from here on leaves SIGINT/SIGTERM to main's sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Api api({.alias = a.alias, .api_key = a.api_key, .max_tokens = a.max_tokens});
  HttpServerOptions ho;
  ho.host = a.host;
  ho.port = static_cast<std::uint16_t>(a.port);
  ho.max_body_bytes = a.max_body;
  ho.read_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout * 1000));
  ho.idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(a.keep_alive * 1000));
  ho.max_connections = a.max_connections;
  auto http = HttpServer::listen(ho, [&api](HttpRequest r, std::shared_ptr<HttpExchange> e) {
    api.handle(std::move(r), std::move(e));
  });
  if (!http) return fail(http.error().message);
  std::thread io([&] { (*http)->run(); });

  auto loaded = load(a, integrity);
  if (!loaded) {
    (*http)->shutdown();
    io.join();
    return fail(loaded.error().message);
  }
  Scheduler& scheduler = *loaded->scheduler;
  const KvPoolStats pool = scheduler.engine().pool_stats();
  std::fprintf(stderr, "qlm-server: %s, context %u, %u parallel, KV pool %u pages of %zu bytes\n",
               a.alias.c_str(), loaded->backend.context, a.parallel, pool.pages, pool.page_bytes);
  std::thread stepper([&] { scheduler.run(); });
  api.ready(loaded->backend);
  std::fprintf(stderr, "listening on %s\n", (*http)->address().c_str());

  wait_and_drain(signals, **http, api, &scheduler, a.drain);
  scheduler.stop();
  stepper.join();
  (*http)->shutdown();
  io.join();
  std::fprintf(stderr, "qlm-server: stopped\n");
  return 0;
}
