// Every model folder of shared/chat-templates × every conversation, rendered as transformers'
// apply_chat_template does (render.py) and compared byte for byte with expected/.
#include <catch2/catch.hpp>

#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "chat/corpus.hpp"

namespace {

// Folders left out of the comparison, with the reason (also listed in docs/chat.md). None at
// present: every folder of the corpus renders exactly.
const std::map<std::string, std::string> kExcluded = {};

std::filesystem::path corpus_root() {
  return std::filesystem::path(QLM_SHARED_DIR) / "chat-templates";
}

}  // namespace

TEST_CASE("chat: the shared chat-template corpus renders as transformers does", "[chat]") {
  std::filesystem::path root = corpus_root();
  REQUIRE(std::filesystem::exists(root / "conversations.json"));
  int passed = 0, failed = 0, excluded = 0, folders = 0, folders_passed = 0;
  for (const std::string& folder : qlm::test::corpus_folders(root)) {
    ++folders;
    if (kExcluded.count(folder) != 0) {
      ++excluded;
      continue;
    }
    bool all = true;
    for (const qlm::test::CorpusCase& c : qlm::test::run_corpus_folder(root, folder)) {
      CAPTURE(c.folder, c.conversation, c.expected_error, c.got_error);
      if (c.expected_render && c.got_render) CHECK(*c.got_render == *c.expected_render);
      CHECK(c.passed());
      c.passed() ? ++passed : ++failed;
      all = all && c.passed();
    }
    folders_passed += all;
  }
  std::cout << "chat-template corpus: " << folders_passed << "/" << folders - excluded
            << " templates pass (" << excluded << " excluded); cases " << passed << " passed, "
            << failed << " failed\n";
  CHECK(folders >= 165);
  CHECK(excluded <= 8);
}
