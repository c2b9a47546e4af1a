// Several prompts served at once by a Scheduler: the scheduler runs on a thread of its own, each
// prompt is submitted from its own client thread, and tokens stream back through callbacks.
// Usage: serve_concurrent model.qlm "prompt one" "prompt two" ...
#include <cstdio>
#include <future>
#include <mutex>
#include <qlm/qlm.hpp>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s model.qlm prompt...\n", argv[0]);
    return 2;
  }
  auto model = qlm::Model::open(argv[1]);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  // A pool of 64 MiB of KV pages shared by every request; 4 requests decode together.
  auto scheduler =
      qlm::Scheduler::create(*model, {.kv_bytes = 64u << 20, .threads = 2}, {.max_running = 4});
  if (!scheduler) {
    std::fprintf(stderr, "%s\n", scheduler.error().message.c_str());
    return 1;
  }
  std::thread server([&] { scheduler->run(); });

  std::mutex out;  // tokens of different requests arrive interleaved
  std::vector<std::thread> clients;
  for (int i = 2; i < argc; ++i) {
    clients.emplace_back([&, i] {
      auto prompt = (*model)->tokenizer().encode(argv[i]);
      if (!prompt) return;
      prompt->insert(prompt->begin(), (*model)->tokenizer().bos());
      std::promise<qlm::RequestResult> done;
      auto id = scheduler->submit(
          {.prompt = *prompt,
           .sampler = {.temperature = 0.7f, .seed = static_cast<std::uint64_t>(i)},
           .options = {.max_tokens = 48},
           .on_token =
               [&](std::uint32_t, const qlm::GeneratedToken& t) {
                 std::lock_guard lock(out);
                 std::printf("[%d] %.*s\n", i - 1, static_cast<int>(t.text.size()), t.text.data());
                 return true;
               },
           .on_done = [&](const qlm::RequestResult& r) { done.set_value(r); }});
      if (!id) {
        std::lock_guard lock(out);
        std::fprintf(stderr, "[%d] %s\n", i - 1, id.error().message.c_str());
        return;
      }
      const qlm::RequestResult r = done.get_future().get();
      std::lock_guard lock(out);
      std::printf("[%d] done: %zu tokens, first after %.0f ms, %.1f tokens/s: %s\n", i - 1,
                  r.stats.generated_tokens, 1e3 * r.stats.time_to_first_token,
                  r.stats.tokens_per_second(), r.choices.empty() ? "" : r.choices[0].text.c_str());
    });
  }
  for (auto& c : clients) c.join();
  scheduler->stop();
  server.join();
  return 0;
}
