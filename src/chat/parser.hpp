// Builds the syntax tree from tokens with jinja2's grammar and operator precedence.
#pragma once

#include <vector>

#include "chat/ast.hpp"
#include "chat/lexer.hpp"

namespace qlm::chat {

/// Parses a token stream into the template's top-level statements; throws SyntaxError.
/// `max_depth` bounds expression and block nesting so that hostile input cannot exhaust the stack.
Body parse(const std::vector<Token>& tokens, int max_depth);

}  // namespace qlm::chat
