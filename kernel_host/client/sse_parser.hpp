#pragma once
// Incremental Server-Sent Events parser (the WHATWG event-stream grammar): feed it bytes as they
// arrive, in pieces of any size, and it hands back each event as soon as its blank line is seen.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kh::client {

// One dispatched event. `data` joins the event's `data:` lines with "\n" (no trailing newline).
struct sse_event {
  std::string event = "message";  // the `event:` field, "message" when absent
  std::string data;
  std::string id;                 // the last `id:` seen on the stream (it persists across events)
  std::optional<long> retry;      // the `retry:` field of this event, when it was all digits
};

// Lines end with LF, CRLF or a lone CR (a CR at the end of one piece and an LF at the start of the
// next are one line end). Lines starting with ':' are comments; a line without ':' is a field with
// an empty value; unknown fields, non-numeric `retry` and ids containing NUL are ignored, as the
// standard says. An event without data lines is not dispatched. A leading UTF-8 BOM is skipped.
class sse_parser {
 public:
  using handler = std::function<void(sse_event&&)>;

  // A line (or an event's accumulated data) longer than max_event_bytes throws std::length_error:
  // a peer that never sends a line end cannot make the client buffer without bound.
  explicit sse_parser(std::size_t max_event_bytes = std::size_t{256} << 20) : max_event_bytes_(max_event_bytes) {}

  // Parses `bytes`, calling on_event for every event completed by them, in order.
  void feed(std::string_view bytes, const handler& on_event);

  // The same, returning the completed events.
  std::vector<sse_event> feed(std::string_view bytes);

  // End of stream: drops a partly received event (one without its blank line), as the standard
  // does, and resets the parser for a new stream. Returns true when something was dropped.
  bool finish();

  // Comment lines seen so far (servers send them as keep-alives).
  std::size_t comments() const noexcept { return comments_; }

 private:
  void process_line(std::string_view line, const handler& on_event);
  void dispatch(const handler& on_event);

  std::size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  std::string event_;
  std::string last_id_;
  std::optional<long> retry_;
  bool has_data_ = false;
  bool after_cr_ = false;  // the previous byte was a CR: an LF now ends nothing new
  bool at_start_ = true;   // nothing fed yet (a BOM may come)
  std::size_t comments_ = 0;
};

}  // namespace kh::client
