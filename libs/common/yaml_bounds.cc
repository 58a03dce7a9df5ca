#include "libs/common/yaml_bounds.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/mark.h"
#include "yaml-cpp/parser.h"

namespace gyre {
namespace {

// Thrown from the event handler to stop the parser at the first problem;
// caught in CheckYaml, never leaves this file.
struct Refused {
  absl::Status status;
};

class BoundsHandler : public YAML::EventHandler {
 public:
  BoundsHandler(absl::string_view source, const YamlLimits& limits)
      : source_(source), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node(mark, 1, nullptr);
    Remember(anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchor_nodes_.find(anchor);
    Node(mark, it == anchor_nodes_.end() ? 1 : it->second, nullptr);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    Node(mark, 1, &value);
    Remember(anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor, false);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor, true);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    bool is_map = false;
    bool expect_key = true;
    int64_t nodes_before = 0;
    YAML::anchor_t anchor = 0;
    // Keys seen so far in this map and where.
    absl::flat_hash_map<std::string, YAML::Mark> keys;
  };

  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return std::string(source_);
    return absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1);
  }

  [[noreturn]] void Refuse(const YAML::Mark& mark, absl::string_view message) const {
    throw Refused{absl::InvalidArgumentError(absl::StrCat(Where(mark), ": ", message))};
  }

  // One node (or an alias standing for `count`) at `mark`; `key_text` is
  // its text when it is a scalar.
  void Node(const YAML::Mark& mark, int64_t count, const std::string* key_text) {
    nodes_ += count;
    if (nodes_ > limits_.max_nodes) {
      Refuse(mark, absl::StrCat("the YAML holds more than ", limits_.max_nodes,
                                " nodes (scalars, lists and maps, aliases expanded); at most ",
                                limits_.max_nodes, " are accepted"));
    }
    if (stack_.empty() || !stack_.back().is_map) return;
    Frame& map = stack_.back();
    if (map.expect_key && key_text != nullptr) {
      auto [it, inserted] = map.keys.emplace(*key_text, mark);
      if (!inserted) {
        Refuse(mark, absl::StrCat("duplicate key \"", key_text->substr(0, 128), "\" (first at ",
                                  Where(it->second), ")"));
      }
    }
    map.expect_key = !map.expect_key;
  }

  void Remember(YAML::anchor_t anchor, int64_t nodes) {
    if (anchor != YAML::NullAnchor) anchor_nodes_[anchor] = nodes;
  }

  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, bool is_map) {
    Node(mark, 1, nullptr);
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      Refuse(mark,
             absl::StrCat("the YAML is nested deeper than ", limits_.max_depth,
                          " lists and maps; at most ", limits_.max_depth, " levels are accepted"));
    }
    Frame& frame = stack_.emplace_back();
    frame.is_map = is_map;
    frame.nodes_before = nodes_ - 1;
    frame.anchor = anchor;
  }

  void Close() {
    if (stack_.empty()) return;
    Remember(stack_.back().anchor, nodes_ - stack_.back().nodes_before);
    stack_.pop_back();
  }

  absl::string_view source_;
  const YamlLimits& limits_;
  int64_t nodes_ = 0;
  std::vector<Frame> stack_;
  absl::flat_hash_map<YAML::anchor_t, int64_t> anchor_nodes_;
};

}  // namespace

absl::Status CheckYaml(absl::string_view text, absl::string_view source, const YamlLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the YAML is ", text.size(),
                                                   " bytes; at most ", limits.max_bytes,
                                                   " are accepted"));
  }
  std::istringstream stream{std::string(text)};
  BoundsHandler handler(source, limits);
  try {
    // The first document only: it is all YAML::Load reads, and on some
    // malformed text (",a: 1, b: [x,!y]}", found by fuzz/config_fuzz)
    // yaml-cpp 0.7 hands out empty documents forever without moving on.
    YAML::Parser parser(stream);
    parser.HandleNextDocument(handler);
  } catch (const Refused& refused) {
    return refused.status;
  } catch (const YAML::Exception&) {
    // Malformed YAML: YAML::Load, which the caller runs next, says where
    // and why in its usual words.
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace gyre
