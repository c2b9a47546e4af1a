// Splits a template into tokens, applying jinja2's whitespace control as its lexer does:
// `{%-`/`-%}` strip, trim_blocks drops the newline after a block tag, lstrip_blocks drops the
// indentation before one, `{% raw %}` is literal text, comments vanish.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qlm::chat {

/// Token kinds: template structure, then the expression tokens inside tags.
enum class TokenKind : std::uint8_t {
  Text,        ///< literal output between tags
  VarBegin,    ///< {{
  VarEnd,      ///< }}
  BlockBegin,  ///< {%
  BlockEnd,    ///< %}
  Name,
  String,  ///< value holds the unescaped string
  Int,
  Float,
  Op,  ///< punctuation or operator, value holds its spelling
  End,
};

/// One token with its 1-based source line.
struct Token {
  TokenKind kind = TokenKind::End;
  std::string value;
  int line = 1;
};

/// Tokenizes a whole template (trim_blocks and lstrip_blocks on, one trailing newline dropped).
/// Throws SyntaxError for an unterminated tag, string or comment.
std::vector<Token> tokenize(std::string_view source);

}  // namespace qlm::chat
