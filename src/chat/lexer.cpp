#include "chat/lexer.hpp"

#include <cctype>

#include "chat/error.hpp"
#include "chat/utf8.hpp"

namespace qlm::chat {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// jinja2 turns \r\n and \r into \n in the template source, then drops one trailing newline
// (keep_trailing_newline=False).
std::string normalize_source(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Python's unicode-escape decoding of a string literal's body.
std::string unescape(std::string_view body) {
  std::string out;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out += body[i];
      continue;
    }
    char c = body[++i];
    auto hex = [&](std::size_t digits) {
      std::uint32_t cp = 0;
      for (std::size_t k = 0; k < digits && i + 1 < body.size() &&
                              std::isxdigit(static_cast<unsigned char>(body[i + 1]));
           ++k) {
        cp =
            cp * 16 + static_cast<std::uint32_t>(std::stoi(std::string(1, body[++i]), nullptr, 16));
      }
      utf8_append(out, cp);
    };
    switch (c) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case 'a':
        out += '\a';
        break;
      case '0':
        out += '\0';
        break;
      case '\\':
      case '\'':
      case '"':
        out += c;
        break;
      case '\n':
        break;  // backslash-newline continues the line
      case 'x':
        hex(2);
        break;
      case 'u':
        hex(4);
        break;
      case 'U':
        hex(8);
        break;
      default:
        out += '\\';
        out += c;
        break;
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_source(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_text_and_tag();
    emit(TokenKind::End, "");
    return std::move(out_);
  }

 private:
  std::string src_;
  std::size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the previous token ended a line (for lstrip_blocks)
  std::vector<Token> out_;

  void emit(TokenKind kind, std::string value) { out_.push_back({kind, std::move(value), line_}); }
  [[noreturn]] void fail(const std::string& msg) const { throw SyntaxError(line_, msg); }

  // Moves pos_ to `to`, counting newlines.
  void advance(std::size_t to) {
    for (; pos_ < to; ++pos_) line_ += src_[pos_] == '\n';
  }
  bool at(std::size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  std::size_t find_tag(std::size_t from) const {
    for (std::size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
    }
    return std::string::npos;
  }

  // Emits the text before the next tag (whitespace-controlled), then the tag itself.
  void lex_text_and_tag() {
    std::size_t start = find_tag(pos_);
    if (start == std::string::npos) {
      emit(TokenKind::Text, src_.substr(pos_));
      advance(src_.size());
      return;
    }
    char kind = src_[start + 1];
    char sign = start + 2 < src_.size() && (src_[start + 2] == '-' || src_[start + 2] == '+')
                    ? src_[start + 2]
                    : '\0';
    std::string text = src_.substr(pos_, start - pos_);
    if (sign == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else if (sign != '+' && kind != '{') {
      lstrip_block(text);
    }
    if (!text.empty()) emit(TokenKind::Text, std::move(text));
    advance(start);
    if (kind == '#') return lex_comment(start);
    if (kind == '%' && lex_raw(start)) return;
    advance(start + 2 + (sign ? 1 : 0));
    emit(kind == '{' ? TokenKind::VarBegin : TokenKind::BlockBegin, "");
    lex_tag(kind == '{');
  }

  // lstrip_blocks: drop spaces and tabs between the line start and a block or comment tag.
  void lstrip_block(std::string& text) const {
    std::size_t nl = text.rfind('\n');
    std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return;
    for (std::size_t i = l_pos; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return;
    }
    text.resize(l_pos);
  }

  // After a block or comment end: `-` strips all whitespace, else trim_blocks eats one newline.
  void after_block_end(char sign) {
    if (sign == '-') {
      std::size_t p = pos_;
      while (p < src_.size() && is_space(src_[p])) ++p;
      advance(p);
    } else if (sign != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      advance(pos_ + 1);
    }
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  void lex_comment(std::size_t start) {
    std::size_t end = src_.find("#}", start + 2);
    if (end == std::string::npos) fail("missing end of comment tag");
    char sign =
        end > start + 2 && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    advance(end + 2);
    after_block_end(sign);
  }

  // Matches `{%[-+]? raw [-]?%}` at p; returns the position after it and the closing sign.
  bool match_word_tag(std::size_t p, std::string_view word, std::size_t& after, char& open_sign,
                      char& close_sign) const {
    if (!at(p, "{%")) return false;
    p += 2;
    open_sign = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p++] : '\0';
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (!at(p, word) || (p + word.size() < src_.size() && is_name_char(src_[p + word.size()]))) {
      return false;
    }
    p += word.size();
    while (p < src_.size() && is_space(src_[p])) ++p;
    close_sign = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p++] : '\0';
    if (!at(p, "%}")) return false;
    after = p + 2;
    return true;
  }

  // {% raw %}...{% endraw %}: the body is literal text (its own whitespace control applies).
  bool lex_raw(std::size_t start) {
    std::size_t after = 0;
    char open = 0, close = 0;
    if (!match_word_tag(start, "raw", after, open, close)) return false;
    advance(after);
    if (close == '-') after_block_end('-');
    std::size_t body_start = pos_;
    for (std::size_t p = find_tag(pos_); p != std::string::npos; p = find_tag(p + 1)) {
      std::size_t end_after = 0;
      char eopen = 0, eclose = 0;
      if (!match_word_tag(p, "endraw", end_after, eopen, eclose)) continue;
      std::string text = src_.substr(body_start, p - body_start);
      if (eopen == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (eopen != '+') {
        line_starting_ = false;
        lstrip_block(text);
      }
      if (!text.empty()) emit(TokenKind::Text, std::move(text));
      advance(end_after);
      after_block_end(eclose);
      return true;
    }
    fail("missing end of raw directive");
  }

  // Expression tokens until the tag's closer (only at bracket depth 0, as jinja2 does).
  void lex_tag(bool is_var) {
    int depth = 0;
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance(pos_ + 1);
      if (pos_ >= src_.size())
        fail(is_var ? "unexpected end of template, expected '}}'"
                    : "unexpected end of template, expected '%}'");
      if (depth == 0 && close_tag(is_var)) return;
      char c = src_[pos_];
      if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        std::size_t e = pos_;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        emit(TokenKind::Name, src_.substr(pos_, e - pos_));
        advance(e);
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        lex_operator(depth);
      }
    }
  }

  bool close_tag(bool is_var) {
    std::string_view closer = is_var ? "}}" : "%}";
    char sign = src_[pos_];
    bool signed_close = (sign == '-' || (!is_var && sign == '+')) && at(pos_ + 1, closer);
    if (!signed_close && !at(pos_, closer)) return false;
    advance(pos_ + closer.size() + (signed_close ? 1 : 0));
    emit(is_var ? TokenKind::VarEnd : TokenKind::BlockEnd, "");
    if (is_var) {
      if (signed_close) after_block_end('-');
      line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
    } else {
      after_block_end(signed_close ? sign : '\0');
    }
    return true;
  }

  void lex_number() {
    auto digits = [&](std::size_t p) {
      while (p < src_.size() && (is_digit(src_[p]) ||
                                 (src_[p] == '_' && p + 1 < src_.size() && is_digit(src_[p + 1]))))
        ++p;
      return p;
    };
    std::size_t e = digits(pos_);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      std::size_t p = e + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        e = digits(p);
        is_float = true;
      }
    }
    std::string text;
    for (std::size_t i = pos_; i < e; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    emit(is_float ? TokenKind::Float : TokenKind::Int, text);
    advance(e);
  }

  void lex_string(char quote) {
    std::size_t p = pos_ + 1;
    while (p < src_.size() && src_[p] != quote) p += src_[p] == '\\' ? 2 : 1;
    if (p >= src_.size()) fail("unexpected end of string");
    int line = line_;
    out_.push_back(
        {TokenKind::String, unescape(std::string_view(src_).substr(pos_ + 1, p - pos_ - 1)), line});
    advance(p + 1);
  }

  void lex_operator(int& depth) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwo) {
      if (at(pos_, op)) {
        emit(TokenKind::Op, std::string(op));
        advance(pos_ + 2);
        return;
      }
    }
    char c = src_[pos_];
    if (std::string_view("+-/*%~[](){}|,.:;=<>").find(c) == std::string_view::npos) {
      fail(fmt::format("unexpected char '{}'", c));
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && --depth < 0) fail(fmt::format("unexpected '{}'", c));
    emit(TokenKind::Op, std::string(1, c));
    advance(pos_ + 1);
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(source).run();
}

}  // namespace qlm::chat
