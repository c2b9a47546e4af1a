// A program that embeds qlm: opens a model given on the command line and prints its config.
#include <cstdio>
#include <qlm/qlm.hpp>

int main(int argc, char** argv) {
  if (argc < 2) return 0;  // built to prove linking; run with a model to prove it works
  auto model = qlm::Model::open(argv[1]);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  std::printf("%s, %u layers\n", std::string(qlm::to_string((*model)->config().arch)).c_str(),
              (*model)->config().n_layers);
  return 0;
}
