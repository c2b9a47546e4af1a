#include "chat/corpus.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "qlm/chat_template.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Json read_json(const fs::path& p) {
  return Json::parse(read_file(p));
}

const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                    "pad_token", "cls_token", "mask_token"};

// transformers' class defaults, applied when tokenizer_config.json does not mention a key.
const std::map<std::string, std::vector<std::pair<std::string, std::string>>>& class_defaults() {
  static const std::map<std::string, std::vector<std::pair<std::string, std::string>>> kDefaults = {
      {"LlamaTokenizer", {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}},
      {"LlamaTokenizerFast", {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}},
      {"CodeLlamaTokenizer", {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}},
      {"GemmaTokenizer",
       {{"bos_token", "<bos>"},
        {"eos_token", "<eos>"},
        {"unk_token", "<unk>"},
        {"pad_token", "<pad>"}}},
      {"GemmaTokenizerFast",
       {{"bos_token", "<bos>"},
        {"eos_token", "<eos>"},
        {"unk_token", "<unk>"},
        {"pad_token", "<pad>"}}},
      {"GPT2Tokenizer",
       {{"bos_token", "<|endoftext|>"},
        {"eos_token", "<|endoftext|>"},
        {"unk_token", "<|endoftext|>"}}},
      {"GPT2TokenizerFast",
       {{"bos_token", "<|endoftext|>"},
        {"eos_token", "<|endoftext|>"},
        {"unk_token", "<|endoftext|>"}}},
      {"Qwen2Tokenizer",
       {{"eos_token", "<|endoftext|>"},
        {"unk_token", "<|endoftext|>"},
        {"pad_token", "<|endoftext|>"}}},
      {"Qwen2TokenizerFast",
       {{"eos_token", "<|endoftext|>"},
        {"unk_token", "<|endoftext|>"},
        {"pad_token", "<|endoftext|>"}}},
  };
  return kDefaults;
}

// A token entry is a string or an AddedToken dict with "content"; null means unset.
Json token_string(const Json& v) {
  return v.is_object() ? v.value("content", Json()) : v;
}

struct Model {
  std::map<std::string, std::string> templates;
  std::map<std::string, Json> special;  // token name -> string or null
  Json additional = Json::array();
};

Model load_model(const fs::path& dir) {
  Model m;
  Json tc = fs::exists(dir / "tokenizer_config.json") ? read_json(dir / "tokenizer_config.json")
                                                      : Json::object();
  const Json& ct = tc.contains("chat_template") ? tc["chat_template"] : Json();
  if (ct.is_string()) m.templates["default"] = ct.get<std::string>();
  if (ct.is_array()) {
    for (const Json& t : ct)
      m.templates[t["name"].get<std::string>()] = t["template"].get<std::string>();
  }
  if (fs::exists(dir / "chat_template.jinja")) {
    m.templates["default"] = read_file(dir / "chat_template.jinja");
  } else if (m.templates.empty() && fs::exists(dir / "chat_template.json")) {
    Json cj = read_json(dir / "chat_template.json");
    if (cj.contains("chat_template") && cj["chat_template"].is_string()) {
      m.templates["default"] = cj["chat_template"].get<std::string>();
    }
  }
  if (fs::exists(dir / "additional_chat_templates")) {
    for (const auto& e : fs::directory_iterator(dir / "additional_chat_templates")) {
      if (e.path().extension() == ".jinja")
        m.templates[e.path().stem().string()] = read_file(e.path());
    }
  }
  if (!tc.empty() && tc.contains("tokenizer_class") && tc["tokenizer_class"].is_string()) {
    auto it = class_defaults().find(tc["tokenizer_class"].get<std::string>());
    if (it != class_defaults().end()) {
      for (const auto& [k, v] : it->second) {
        if (!tc.contains(k)) m.special[k] = v;
      }
    }
  }
  for (const char* k : kSpecialKeys) {
    if (tc.contains(k)) m.special[k] = token_string(tc[k]);
  }
  if (tc.contains("additional_special_tokens") && tc["additional_special_tokens"].is_array()) {
    for (const Json& t : tc["additional_special_tokens"]) m.additional.push_back(token_string(t));
  }
  for (const char* name : {"special_tokens_map.json", "special_tokens.json"}) {
    if (!fs::exists(dir / name)) continue;
    Json sm = read_json(dir / name);
    for (const char* k : kSpecialKeys) {
      if (sm.contains(k)) m.special[k] = token_string(sm[k]);
    }
    if (sm.contains("additional_special_tokens") && !sm["additional_special_tokens"].empty()) {
      m.additional = Json::array();
      for (const Json& t : sm["additional_special_tokens"]) m.additional.push_back(token_string(t));
    }
  }
  return m;
}

std::tm fixed_clock() {
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 12;
  tm.tm_wday = 3;  // a Wednesday
  tm.tm_yday = 14;
  tm.tm_isdst = -1;
  return tm;
}

void render_case(const Model& m, const Json& conv, CorpusCase& c) {
  bool has_tools = conv.contains("tools") && !conv["tools"].is_null();
  std::string name = has_tools && m.templates.count("tool_use") ? "tool_use" : "default";
  if (!m.templates.count(name)) {
    c.got_error = "ValueError: no default chat template";
    return;
  }
  ChatTemplateOptions o;
  o.add_generation_prompt = conv.value("add_generation_prompt", false);
  o.continue_final_message = conv.value("continue_final_message", false);
  if (has_tools) o.tools_json = conv["tools"].dump();
  if (conv.contains("documents") && !conv["documents"].is_null()) {
    o.documents_json = conv["documents"].dump();
  }
  for (const auto& [k, v] : m.special) {
    if (v.is_string()) o.special_tokens.emplace_back(k, v.get<std::string>());
  }
  Json vars = Json::object();
  if (!m.additional.empty()) vars["additional_special_tokens"] = m.additional;
  if (conv.contains("kwargs")) {
    for (const auto& [k, v] : conv["kwargs"].items()) vars[k] = v;
  }
  o.variables_json = vars.dump();
  o.clock = fixed_clock;
  Result<ChatTemplate> t = ChatTemplate::parse(m.templates.at(name), c.folder + "/" + name);
  if (!t.ok()) {
    c.got_error = t.error().message;
    return;
  }
  Result<std::string> r = t->render_json(conv["messages"].dump(), o);
  if (r.ok())
    c.got_render = *r;
  else
    c.got_error = r.error().message;
}

}  // namespace

bool CorpusCase::passed() const {
  if (expected_render) return got_render && *got_render == *expected_render;
  return !got_render && !got_error.empty() && got_error.size() >= expected_error.size() &&
         got_error.compare(got_error.size() - expected_error.size(), expected_error.size(),
                           expected_error) == 0;
}

std::vector<std::string> corpus_folders(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory() || e.path().filename() == "expected") continue;
    const fs::path& p = e.path();
    if (fs::exists(p / "tokenizer_config.json") || fs::exists(p / "chat_template.jinja") ||
        fs::exists(p / "chat_template.json")) {
      out.push_back(p.filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<CorpusCase> run_corpus_folder(const fs::path& root, const std::string& folder) {
  Model m = load_model(root / folder);
  Json convs = read_json(root / "conversations.json");
  Json expected = read_json(root / "expected" / (folder + ".json"));
  std::vector<CorpusCase> out;
  for (std::size_t i = 0; i < convs.size(); ++i) {
    CorpusCase c;
    c.folder = folder;
    c.conversation = convs[i]["name"].get<std::string>();
    const Json& want = expected["results"][i];
    if (want.contains("rendered"))
      c.expected_render = want["rendered"].get<std::string>();
    else
      c.expected_error = want["error"].get<std::string>();
    render_case(m, convs[i], c);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace qlm::test
