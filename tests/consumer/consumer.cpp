// A program that embeds qlm through the application API alone (qlm/qlm.hpp): opens a model given
// on the command line, prints its config and generates a few tokens greedily.
#include <cstdio>
#include <qlm/qlm.hpp>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 0;  // built to prove linking; run with a model to prove it works
  auto model = qlm::Model::open(argv[1]);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  std::printf("%s, %u layers\n", std::string(qlm::to_string((*model)->config().arch)).c_str(),
              (*model)->config().n_layers);
  auto session = qlm::Session::create(*model, {.context = 64, .threads = 1});
  if (!session) {
    std::fprintf(stderr, "%s\n", session.error().message.c_str());
    return 1;
  }
  qlm::Sampler greedy({.temperature = 0.0f});
  const auto prompt = (*model)->tokenizer().encode("Once upon a time");
  if (!prompt) return 1;
  auto result = qlm::generate(*session, greedy, *prompt, {.max_tokens = 8});
  if (!result || result->tokens.empty()) {
    std::fprintf(stderr, "generation failed\n");
    return 1;
  }
  std::printf("generated %zu tokens\n", result->tokens.size());
  return 0;
}
