#pragma once
// notebook: an nbformat 4 (4.0-4.5) document. The JSON is kept whole (unknown metadata,
// attachments and fields survive), and written the way nbformat writes it: 1-space indent,
// sorted keys, non-ASCII kept, a trailing newline. Multiline strings keep the shape the file
// had (a string or a list of lines); strings this program writes are split into lines as
// nbformat does. An unchanged notebook written by nbformat round-trips byte for byte.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace kh::renderers {

namespace nl = nlohmann;

class notebook {
 public:
  // Parses and validates. Errors (errc::invalid_request) name the cell and field:
  // "cells[2] (id 'a1b2').outputs[0].output_type: 'bogus' is not one of stream, ...".
  // Cells of a 4.5 notebook without an id get a fresh one.
  static result<notebook> parse(std::string_view text);
  static result<notebook> load(const std::filesystem::path& path);
  // An empty 4.5 notebook with the given kernelspec name and language.
  static notebook make(std::string_view kernel_name = "python3", std::string_view language = "python");

  // The nbformat serialisation (with its trailing newline).
  std::string dump() const;
  // Writes atomically: a temporary file beside the target, fsync, rename.
  result<void> save(const std::filesystem::path& path) const;

  nl::json& json() noexcept { return doc_; }
  const nl::json& json() const noexcept { return doc_; }
  nl::json& cells() { return doc_["cells"]; }
  const nl::json& cells() const { return doc_.at("cells"); }
  std::size_t size() const { return cells().size(); }
  nl::json& metadata() { return doc_["metadata"]; }
  int minor() const { return doc_.value("nbformat_minor", 0); }

  // The kernel name of metadata.kernelspec.name, or "".
  std::string kernel_name() const;
  // metadata.language_info.name, else metadata.kernelspec.language, or "".
  std::string language() const;

  // A cell's source as one string, whatever its stored shape.
  std::string source(std::size_t cell) const;
  // Sets a cell's source stored as a list of lines.
  void set_source(std::size_t cell, std::string_view text);
  // The tags of a cell (metadata.tags).
  std::vector<std::string> tags(std::size_t cell) const;
  bool has_tag(std::size_t cell, std::string_view tag) const;
  // "cells[3]" plus " (id 'x')" when the cell has an id: how messages name a cell.
  std::string cell_label(std::size_t cell) const;

  // A new cell of this notebook's version (an id from 4.5 on), source stored as lines.
  nl::json make_cell(std::string_view cell_type, std::string_view source) const;
  // Inserts a cell before position `at`.
  void insert_cell(std::size_t at, nl::json cell);

  // Converts in-memory outputs (joined strings) to the on-disk shape nbformat writes:
  // stream text, traceback kept, and non-JSON mime strings split into lines.
  static nl::json outputs_for_disk(const nl::json& outputs);
  // Splits text into lines keeping their "\n" (Python's str.splitlines(True) for "\n").
  static nl::json split_lines(std::string_view text);

 private:
  nl::json doc_;
};

// object[key] when object is an object and that member is a string, else fallback. For fields
// the validator does not check (metadata is free-form): json::value() throws on another type.
std::string string_member(const nl::json& object, std::string_view key, std::string fallback = {});

// A fresh cell id as nbformat makes them (8 lowercase hex characters).
std::string new_cell_id();

// Writes bytes to a file atomically (temporary file in the same folder, fsync, rename).
result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace kh::renderers
