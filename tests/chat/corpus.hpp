// Renders the shared chat-template corpus (shared/chat-templates) the way its render.py does:
// template choice, special tokens and template arguments per model folder and conversation.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qlm::test {

/// The outcome of one folder × conversation case.
struct CorpusCase {
  std::string folder;
  std::string conversation;
  std::optional<std::string> expected_render;  ///< set when transformers renders
  std::string expected_error;                  ///< "Class: message" when it raises
  std::optional<std::string> got_render;
  std::string got_error;  ///< qlm's error message

  /// True when qlm matches: the same text, or an error whose message ends with the expected one.
  bool passed() const;
};

/// Model folders of the corpus (those with a template), sorted.
std::vector<std::string> corpus_folders(const std::filesystem::path& root);

/// Renders every conversation of conversations.json with one folder's template(s).
std::vector<CorpusCase> run_corpus_folder(const std::filesystem::path& root,
                                          const std::string& folder);

}  // namespace qlm::test
