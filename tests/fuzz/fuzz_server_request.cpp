// qlm-server's request handling without sockets: arbitrary bodies to each endpoint, served by the
// real stories260K model (with the chatml template) through the real Api and Scheduler. The first
// byte picks the endpoint. Properties: every request gets exactly one complete answer with a
// status the API documents, JSON answers parse, and once the scheduler is idle no KV page is held
// and nothing waits or runs.
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "api.hpp"
#include "fuzz_util.hpp"
#include "qlm/chat.hpp"
#include "qlm/convert/convert.hpp"

namespace {

using namespace qlm;
using namespace qlm::server;

struct Served {
  std::shared_ptr<const Model> model;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Api> api;
};
Served* g = nullptr;

// Records what the handler sends; checks the exchange is used as documented.
class Recorder final : public HttpExchange {
 public:
  void reply(int s, std::string_view type, std::string b, std::vector<HttpHeader>) override {
    if (ended || begun) std::abort();
    status = s;
    json = type == "application/json";
    body = std::move(b);
    ended = true;
  }
  void begin_stream(int s, std::string_view) override {
    if (ended || begun) std::abort();
    status = s;
    begun = true;
  }
  void write(std::string data) override {
    if (!begun || ended) std::abort();
    body += data;
  }
  void end_stream() override {
    if (!begun || ended) std::abort();
    ended = true;
  }
  bool gone() const override { return false; }
  void on_gone(std::function<void()>) override {}

  int status = 0;
  bool json = false, begun = false, ended = false;
  std::string body;
};

constexpr const char* kPaths[] = {"/v1/chat/completions", "/v1/completions", "/infill", "/tokenize",
                                  "/detokenize",          "/v1/models",      "/metrics"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* shared = std::getenv("QLM_SHARED_DIR");
  const std::filesystem::path root = shared ? shared : QLM_SHARED_DIR;
  ConvertOptions convert;
  convert.input_dir = root / "models/stories260K";
  convert.output = fuzz::work_dir() / "stories.qlm";
  if (!convert_checkpoint(convert)) std::abort();  // the shared data is missing
  static Served served;
  served.model = Model::open(convert.output).value();
  EngineOptions engine{.context = 256, .threads = 1};
  engine.kv_bytes = std::size_t{4} << 20;
  served.scheduler = std::make_unique<Scheduler>(
      Scheduler::create(served.model, engine, {.step_tokens = 64, .max_running = 4, .max_queue = 4})
          .value());
  // Short answers keep each input quick; the parsing is what is fuzzed.
  served.api = std::make_unique<Api>(ApiConfig{.alias = "fuzz", .max_tokens = 8, .log = false});
  Backend b{.model = served.model, .scheduler = served.scheduler.get()};
  b.chat = find_chat_template(served.model->tokenizer(), "chatml").value();
  b.context = served.scheduler->engine().context_size();
  served.api->ready(std::move(b));
  g = &served;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  HttpRequest request;
  request.method = data[0] & 0x80 ? "GET" : "POST";
  request.path = kPaths[(data[0] & 0x7F) % std::size(kPaths)];
  request.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  request.peer = "fuzz";
  auto recorder = std::make_shared<Recorder>();
  g->api->handle(request, recorder);
  while (g->scheduler->step()) {
  }
  if (!recorder->ended) std::abort();  // every request is answered, whole
  switch (recorder->status) {
    case 200:
    case 400:
    case 404:
    case 405:
    case 500:
    case 503:
      break;
    default:
      std::abort();
  }
  if (recorder->json && nlohmann::json::parse(recorder->body, nullptr, false).is_discarded()) {
    std::abort();
  }
  const SchedulerStats s = g->scheduler->stats();
  if (s.waiting != 0 || s.running != 0 || s.pool.used != 0) std::abort();
  return 0;
}
