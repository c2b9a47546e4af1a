// The smallest useful embedding of qlm: load a model, encode a prompt, stream generated text.
// Usage: generate_minimal model.qlm "Once upon a time"
#include <cstdio>
#include <qlm/qlm.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s model.qlm prompt\n", argv[0]);
    return 2;
  }
  auto model = qlm::Model::open(argv[1]);  // memory-mapped; share it across sessions and threads
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  auto session = qlm::Session::create(*model, {.context = 512});
  if (!session) {
    std::fprintf(stderr, "%s\n", session.error().message.c_str());
    return 1;
  }
  qlm::Sampler sampler({.temperature = 0.7f, .seed = 1});
  const auto prompt = (*model)->tokenizer().encode(argv[2]);
  if (!prompt) {
    std::fprintf(stderr, "%s\n", prompt.error().message.c_str());
    return 1;
  }
  qlm::GenerateOptions options{.max_tokens = 64, .stop = {"\n\n"}};
  options.on_token = [](const qlm::GeneratedToken& t) {
    std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    return true;  // return false to stop early
  };
  auto result = qlm::generate(*session, sampler, *prompt, options);
  if (!result) {
    std::fprintf(stderr, "%s\n", result.error().message.c_str());
    return 1;
  }
  std::printf("\n");
  return 0;
}
