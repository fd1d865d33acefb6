#pragma once
// output_folder: turns the IOPub messages of executed cells into nbformat outputs exactly as
// Jupyter frontends and nbclient do:
//  - consecutive stream messages of one name are merged into one output, with carriage returns
//    and backspaces applied (a progress bar ends as its last state);
//  - clear_output(wait=false) clears the cell now; wait=true clears it at the next output;
//  - display_data / execute_result / update_display_data carrying a transient display_id
//    rewrite data and metadata of every earlier output with that id, in any folded cell;
//    update_display_data appends nothing;
//  - error becomes an error output; other message types are ignored.
// Outputs are nbformat dicts held in memory with joined strings (not lists of lines).

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kh::renderers {

namespace nl = nlohmann;

// Applies "\r" (a line's text up to its last carriage return that is not the end of the line
// is dropped) and "\b" (erases the character before it) as nbconvert's coalesce_streams does.
std::string apply_control_characters(std::string_view text);

class output_folder {
 public:
  // Starts a new cell whose outputs begin empty; returns its index in this folder.
  std::size_t begin_cell();
  // Folds one IOPub message of the current cell (begin_cell first).
  void add(std::string_view msg_type, const nl::json& content);

  std::size_t cell_count() const noexcept { return cells_.size(); }
  // The nbformat outputs of a folded cell.
  const nl::json& outputs(std::size_t cell) const { return cells_.at(cell).outputs; }
  // Cells whose outputs changed since the last call (the current cell and any updated by
  // display id); clears the record.
  std::set<std::size_t> take_changed();

  // Folds one cell's messages ({"msg_type"| "header":{"msg_type"}, "content"}) at once.
  static nl::json fold(const std::vector<nl::json>& messages);

 private:
  struct folded_cell {
    nl::json outputs = nl::json::array();
    std::vector<std::string> display_ids;  // parallel to outputs; "" when none
    bool clear_pending = false;
  };
  void clear_current();
  void update_display(const std::string& display_id, const nl::json& content);

  std::vector<folded_cell> cells_;
  std::set<std::size_t> changed_;
};

}  // namespace kh::renderers
