#pragma once
// fast_json: nlohmann::json's parse and dump, made fast for documents that carry big strings (a 1 MiB
// file's content in /api/write, /api/read, read/stream chunks, command output). nlohmann's lexer and
// escaper go byte by byte through virtual-free but branchy code (~50 MB/s); these copy runs of plain
// bytes with one append.
//
// The results are nlohmann's, byte for byte and value for value:
// - parse() handles well-formed documents itself and hands anything else (an error, a BOM, a
//   duplicate key, a number, deep nesting) to nlohmann, so every error and edge case is nlohmann's.
// - dump() writes strings itself when they are valid UTF-8 and hands the rest (invalid UTF-8,
//   numbers) to nlohmann's serializer.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kh::fast_json {

// As nlohmann::json::parse(text, nullptr, false): a discarded value when text is not one JSON value.
nlohmann::json parse(std::string_view text);

// As value.dump(-1, ' ', false, error_handler_t::replace): compact, UTF-8 kept, invalid bytes U+FFFD.
std::string dump(const nlohmann::json& value);
// The same, appended to out.
void dump_to(std::string& out, const nlohmann::json& value);

}  // namespace kh::fast_json
