// Hugging Face model directory -> Vocabulary: tokenizer.json, tokenizer.model or vocab.json +
// merges.txt, then tokenizer_config.json / added_tokens.json / special_tokens_map.json /
// config.json / generation_config.json.
#include <algorithm>
#include <optional>
#include <sstream>

#include "qlm/tokenizer/hf_tokenizer.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/text.hpp"

namespace qlm {
namespace {

using namespace detail::hf;  // NOLINT: the loader is built from these helpers
using detail::fail;

Vocabulary parse_vocab_merges(const fs::path& dir, const std::string& model_type,
                              bool add_prefix_space) {
  const fs::path vpath = dir / "vocab.json", mpath = dir / "merges.txt";
  Vocabulary v;
  v.model = TokenizerModel::ByteLevelBpe;
  vocab_from_map(Doc{vpath.string()}, read_json(vpath), v);
  const auto ids = index_tokens(v);
  const Doc md{mpath.string()};
  std::istringstream in(read_file(mpath));
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.starts_with("#version"))) continue;
    const std::size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
      fail(ErrorCode::Format, "{}: line {} '{}' is not two tokens separated by a space", md.file,
           lineno, line);
    }
    v.merges.push_back(
        merge_ids(md, ids, line.substr(0, sp), line.substr(sp + 1), v.merges.size()));
  }
  if (model_type.starts_with("qwen")) {
    v.normalizer.push_back({NormalizerKind::Nfc, "", ""});
    PreTokenizerStep split;
    split.kind = PreTokenizerKind::Split;
    split.pattern = std::string(detail::kQwen2Pattern);
    v.pre_tokenizer.push_back(split);
    PreTokenizerStep bl;
    bl.kind = PreTokenizerKind::ByteLevel;
    v.pre_tokenizer.push_back(bl);
  } else {
    PreTokenizerStep bl;
    bl.kind = PreTokenizerKind::ByteLevel;
    bl.use_regex = true;
    bl.add_prefix_space = add_prefix_space;
    v.pre_tokenizer.push_back(bl);
  }
  return v;
}

// A token given as "text", {"content": "text"} or null.
std::optional<std::string> token_string(const Doc& d, const json* j, std::string_view what) {
  if (j == nullptr) return std::nullopt;
  if (j->is_object()) return d.str(d.need(*j, "content"), what);
  return d.str(*j, what);
}

// eos_token_id / bos_token_id given as an int or a list of ints.
std::vector<std::int64_t> id_list(const Doc& d, const json* j, std::string_view what) {
  std::vector<std::int64_t> out;
  if (j == nullptr) return out;
  if (j->is_array()) {
    for (const json& x : *j) out.push_back(d.integer(x, what));
  } else {
    out.push_back(d.integer(*j, what));
  }
  return out;
}

// Adds or replaces the template called `name` ("default" is Vocabulary::chat_template).
void set_chat_template(Vocabulary& v, std::string name, std::string source) {
  if (name == "default") {
    v.chat_template = std::move(source);
    return;
  }
  for (NamedChatTemplate& t : v.chat_templates) {
    if (t.name == name) {
      t.source = std::move(source);
      return;
    }
  }
  v.chat_templates.push_back({std::move(name), std::move(source)});
}

// tokenizer_config.json's "chat_template": a string, or a list of {name, template}.
void read_chat_templates(const Doc& tc, const json& ct, Vocabulary& v) {
  if (ct.is_string()) {
    v.chat_template = ct.get<std::string>();
    return;
  }
  if (!ct.is_array()) {
    fail(ErrorCode::Format, "{}: 'chat_template' must be a string or a list of named templates",
         tc.file);
  }
  for (const json& t : ct) {
    std::string name = tc.str(tc.need(t, "name"), "chat_template.name");
    if (name.empty()) fail(ErrorCode::Format, "{}: a chat template has an empty name", tc.file);
    set_chat_template(v, std::move(name), tc.str(tc.need(t, "template"), "chat_template.template"));
  }
}

// Newer checkpoints keep templates in files, which transformers prefers over tokenizer_config:
// chat_template.jinja (the default) and additional_chat_templates/NAME.jinja.
void read_template_files(const fs::path& dir, Vocabulary& v) {
  if (fs::is_regular_file(dir / "chat_template.jinja")) {
    v.chat_template = read_file(dir / "chat_template.jinja");
  }
  const fs::path extra = dir / "additional_chat_templates";
  if (!fs::is_directory(extra)) return;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(extra)) {
    if (e.is_regular_file() && e.path().extension() == ".jinja") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());  // directory order is not stable across machines
  for (const fs::path& f : files) set_chat_template(v, f.stem().string(), read_file(f));
}

Vocabulary load(const fs::path& dir) {
  const auto exists = [&](const char* name) { return fs::is_regular_file(dir / name); };
  std::optional<json> tconf, config, gen, stmap, added_json;
  const auto load_opt = [&](const char* name, std::optional<json>& out) {
    if (exists(name)) out = read_json(dir / name);
  };
  load_opt("tokenizer_config.json", tconf);
  load_opt("config.json", config);
  load_opt("generation_config.json", gen);
  load_opt("special_tokens_map.json", stmap);
  load_opt("added_tokens.json", added_json);
  const Doc tc{(dir / "tokenizer_config.json").string()};
  const Doc cc{(dir / "config.json").string()};
  const Doc gc{(dir / "generation_config.json").string()};
  const Doc sm{(dir / "special_tokens_map.json").string()};
  const Doc aj{(dir / "added_tokens.json").string()};

  Vocabulary v;
  if (exists("tokenizer.json")) {
    v = parse_tokenizer_json(dir / "tokenizer.json");
  } else if (exists("tokenizer.model")) {
    const std::string bytes = read_file(dir / "tokenizer.model");
    v = detail::unwrap(parse_sentencepiece_model(
        {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()},
        (dir / "tokenizer.model").string()));
  } else if (exists("vocab.json") && exists("merges.txt")) {
    std::string model_type;
    if (config) {
      if (const json* mt = cc.find(*config, "model_type")) model_type = cc.str(*mt, "model_type");
    }
    const bool aps = tconf ? tc.flag(*tconf, "add_prefix_space", false) : false;
    v = parse_vocab_merges(dir, model_type, aps);
  } else {
    fail(ErrorCode::Io, "{}: no tokenizer.json, tokenizer.model or vocab.json + merges.txt",
         dir.string());
  }

  // Special token strings that mark added tokens as special.
  std::vector<std::string> special_names;
  std::optional<std::string> names[4];  // bos, eos, unk, pad
  constexpr const char* keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
  for (int i = 0; i < 4; ++i) {
    if (tconf && tc.find(*tconf, keys[i]))
      names[i] = token_string(tc, tc.find(*tconf, keys[i]), keys[i]);
    if (!names[i] && stmap) names[i] = token_string(sm, sm.find(*stmap, keys[i]), keys[i]);
    if (names[i]) special_names.push_back(*names[i]);
  }
  if (stmap) {
    if (const json* extra = sm.find(*stmap, "additional_special_tokens")) {
      for (const json& e : *extra)
        special_names.push_back(*token_string(sm, &e, "additional_special_tokens"));
    }
  }
  std::map<std::int32_t, AddedToken> added;
  if (tconf) {
    if (const json* atd = tc.find(*tconf, "added_tokens_decoder")) {
      if (!atd->is_object())
        fail(ErrorCode::Format, "{}: added_tokens_decoder must be an object", tc.file);
      for (auto it = atd->begin(); it != atd->end(); ++it) {
        std::int64_t id = -1;
        try {
          id = std::stoll(it.key());
        } catch (const std::exception&) {
          fail(ErrorCode::Format, "{}: added_tokens_decoder key '{}' is not an id", tc.file,
               it.key());
        }
        added.emplace(static_cast<std::int32_t>(id), added_from_json(tc, it.value(), id, false));
      }
    }
  }
  if (added_json) {
    if (!added_json->is_object()) fail(ErrorCode::Format, "{}: must be an object", aj.file);
    for (auto it = added_json->begin(); it != added_json->end(); ++it) {
      const std::int64_t id = aj.integer(it.value(), it.key());
      AddedToken a;
      a.id = static_cast<std::int32_t>(id);
      a.content = it.key();
      a.special =
          std::find(special_names.begin(), special_names.end(), a.content) != special_names.end();
      a.normalized = !a.special;
      added.emplace(a.id, std::move(a));
    }
  }
  for (auto& [id, a] : added) {
    if (std::find(special_names.begin(), special_names.end(), a.content) != special_names.end())
      a.special = true;
  }
  merge_added(v, std::move(added), tc.file);

  const auto ids = index_tokens(v);
  std::int32_t* dst[4] = {&v.bos_id, &v.eos_id, &v.unk_id, &v.pad_id};
  for (int i = 0; i < 4; ++i) {
    if (!names[i]) continue;
    const auto it = ids.find(*names[i]);
    if (it == ids.end())
      fail(ErrorCode::Format, "{}: {} '{}' is not a token", tc.file, keys[i], *names[i]);
    *dst[i] = it->second;
  }
  if (tconf) {
    v.add_bos = tc.flag(*tconf, "add_bos_token", v.add_bos);
    v.add_eos = tc.flag(*tconf, "add_eos_token", v.add_eos);
    if (const json* ct = tc.find(*tconf, "chat_template")) read_chat_templates(tc, *ct, v);
  }
  read_template_files(dir, v);
  const auto n = static_cast<std::int64_t>(v.tokens.size());
  std::vector<std::int64_t> eos_all;
  for (const auto& [doc, j] : {std::pair{&gc, &gen}, std::pair{&cc, &config}}) {
    if (!*j) continue;
    const auto bos_ids = id_list(*doc, doc->find(**j, "bos_token_id"), "bos_token_id");
    const auto eos_ids = id_list(*doc, doc->find(**j, "eos_token_id"), "eos_token_id");
    const auto pad_ids = id_list(*doc, doc->find(**j, "pad_token_id"), "pad_token_id");
    for (const std::int64_t id : bos_ids) {
      if (id < 0 || id >= n)
        fail(ErrorCode::Format, "{}: bos_token_id {} is outside 0..{}", doc->file, id, n - 1);
    }
    for (const std::int64_t id : eos_ids) {
      if (id < 0 || id >= n)
        fail(ErrorCode::Format, "{}: eos_token_id {} is outside 0..{}", doc->file, id, n - 1);
      eos_all.push_back(id);
    }
    if (v.bos_id < 0 && !bos_ids.empty()) v.bos_id = static_cast<std::int32_t>(bos_ids.front());
    if (v.eos_id < 0 && !eos_ids.empty()) v.eos_id = static_cast<std::int32_t>(eos_ids.front());
    if (v.pad_id < 0 && pad_ids.size() == 1 && pad_ids[0] >= 0 && pad_ids[0] < n) {
      v.pad_id = static_cast<std::int32_t>(pad_ids[0]);
    }
  }
  std::vector<std::int32_t> eos_ids;
  if (v.eos_id >= 0) eos_ids.push_back(v.eos_id);
  for (const std::int32_t id : v.eos_ids) eos_ids.push_back(id);
  for (const std::int64_t id : eos_all) eos_ids.push_back(static_cast<std::int32_t>(id));
  v.eos_ids.clear();
  for (const std::int32_t id : eos_ids) {
    if (std::find(v.eos_ids.begin(), v.eos_ids.end(), id) == v.eos_ids.end())
      v.eos_ids.push_back(id);
  }
  if (v.add_bos && v.bos_id < 0)
    fail(ErrorCode::Format, "{}: add_bos_token is set but there is no BOS token", tc.file);
  if (v.add_eos && v.eos_id < 0)
    fail(ErrorCode::Format, "{}: add_eos_token is set but there is no EOS token", tc.file);
  v.fim = detect_fim_tokens(v);
  detail::unwrap(validate_vocabulary(v, dir.string()));
  return v;
}

}  // namespace

Result<Vocabulary> load_hf_tokenizer(const std::filesystem::path& dir) {
  return detail::capture([&] { return load(dir); });
}

}  // namespace qlm
