// The gateway's reflection JSON printer against protobuf's own: messages of
// every type the REST API and the event feed print, filled with random
// values in every field (scalars of each kind, enums known and unknown,
// repeated fields, maps, nested messages, timestamps, durations, Struct),
// must print JSON that parses to the same value.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <boost/json.hpp>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "gyre/v1/optimizer_service.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/predictor_service.pb.h"
#include "services/gateway/json_body.h"

namespace gyre::gateway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Random values for every field of `message`, `depth` levels deep, the
// same for a seed in every run (absl::BitGen salts its seed per process, so
// a failure could not be replayed).
class Filler {
 public:
  explicit Filler(uint64_t seed) : random_(seed) {}

  void Fill(Message* message, int depth) {
    const Descriptor* descriptor = message->GetDescriptor();
    const Reflection* reflection = message->GetReflection();
    if (descriptor->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP) {
      reflection->SetInt64(message, descriptor->field(0),
                           absl::Uniform<int64_t>(random_, -62135596800, 253402300799));
      reflection->SetInt32(message, descriptor->field(1), Nanos());
      return;
    }
    if (descriptor->well_known_type() == Descriptor::WELLKNOWNTYPE_DURATION) {
      const int64_t seconds = absl::Uniform<int64_t>(random_, -100000, 100000);
      const int32_t nanos = Nanos();
      reflection->SetInt64(message, descriptor->field(0), seconds);
      reflection->SetInt32(message, descriptor->field(1), seconds < 0 ? -nanos : nanos);
      return;
    }
    if (descriptor->well_known_type() == Descriptor::WELLKNOWNTYPE_VALUE) {
      // One kind only (a Value's fields are a oneof): a string or a number.
      if (absl::Bernoulli(random_, 0.5)) {
        reflection->SetString(message, descriptor->FindFieldByName("string_value"), Text());
      } else {
        reflection->SetDouble(message, descriptor->FindFieldByName("number_value"), 0.25);
      }
      return;
    }
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const FieldDescriptor* field = descriptor->field(i);
      // Leave some fields unset (and one member of each oneof set).
      if (absl::Bernoulli(random_, 0.2)) continue;
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth <= 0) continue;
      if (field->is_repeated()) {
        const int count = absl::Uniform(random_, 0, 3);
        for (int k = 0; k < count; ++k) Add(message, field, depth);
      } else {
        Set(message, field, depth);
      }
    }
  }

 private:
  int32_t Nanos() {
    switch (absl::Uniform(random_, 0, 4)) {
      case 0:
        return 0;
      case 1:
        return absl::Uniform(random_, 0, 1000) * 1000000;
      case 2:
        return absl::Uniform(random_, 0, 1000000) * 1000;
      default:
        return absl::Uniform(random_, 0, 1000000000);
    }
  }
  std::string Text() {
    static const char* kPieces[] = {"a",    "Z", " ", "\"",   "\\", "\n", "\t",
                                    "\x01", "<", "é", "日本", "😀",  "/",  "\x7f"};
    std::string text;
    const int count = absl::Uniform(random_, 0, 6);
    for (int i = 0; i < count; ++i) text += kPieces[absl::Uniform<size_t>(random_, 0, 14)];
    return text;
  }
  double Double() {
    switch (absl::Uniform(random_, 0, 6)) {
      case 0:
        return 0.1;
      case 1:
        return absl::Uniform(random_, -1e6, 1e6);
      case 2:
        return std::numeric_limits<double>::infinity();
      case 3:
        return 1e300 * absl::Uniform(random_, 1.0, 2.0);
      case 4:
        return static_cast<double>(absl::Uniform(random_, -100, 100));
      default:
        return std::nan("");
    }
  }
  int Enum(const FieldDescriptor* field) {
    const auto* type = field->enum_type();
    if (absl::Bernoulli(random_, 0.1)) return 977;  // not declared
    return type->value(absl::Uniform(random_, 0, type->value_count()))->number();
  }

  void Set(Message* message, const FieldDescriptor* field, int depth) {
    const Reflection* reflection = message->GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return reflection->SetInt32(message, field,
                                    static_cast<int32_t>(absl::Uniform<uint32_t>(random_)));
      case FieldDescriptor::CPPTYPE_UINT32:
        return reflection->SetUInt32(message, field, absl::Uniform<uint32_t>(random_));
      case FieldDescriptor::CPPTYPE_INT64:
        return reflection->SetInt64(message, field,
                                    static_cast<int64_t>(absl::Uniform<uint64_t>(random_)));
      case FieldDescriptor::CPPTYPE_UINT64:
        return reflection->SetUInt64(message, field, absl::Uniform<uint64_t>(random_));
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return reflection->SetDouble(message, field, Double());
      case FieldDescriptor::CPPTYPE_FLOAT:
        return reflection->SetFloat(message, field, static_cast<float>(Double()));
      case FieldDescriptor::CPPTYPE_BOOL:
        return reflection->SetBool(message, field, absl::Bernoulli(random_, 0.5));
      case FieldDescriptor::CPPTYPE_ENUM:
        return reflection->SetEnumValue(message, field, Enum(field));
      case FieldDescriptor::CPPTYPE_STRING:
        return reflection->SetString(message, field,
                                     field->type() == FieldDescriptor::TYPE_BYTES
                                         ? std::string("\x00\xff\x10 b", 5)
                                         : Text());
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return Fill(reflection->MutableMessage(message, field), depth - 1);
    }
  }
  void Add(Message* message, const FieldDescriptor* field, int depth) {
    const Reflection* reflection = message->GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return reflection->AddInt32(message, field,
                                    static_cast<int32_t>(absl::Uniform<uint32_t>(random_)));
      case FieldDescriptor::CPPTYPE_UINT32:
        return reflection->AddUInt32(message, field, absl::Uniform<uint32_t>(random_));
      case FieldDescriptor::CPPTYPE_INT64:
        return reflection->AddInt64(message, field,
                                    static_cast<int64_t>(absl::Uniform<uint64_t>(random_)));
      case FieldDescriptor::CPPTYPE_UINT64:
        return reflection->AddUInt64(message, field, absl::Uniform<uint64_t>(random_));
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return reflection->AddDouble(message, field, Double());
      case FieldDescriptor::CPPTYPE_FLOAT:
        return reflection->AddFloat(message, field, static_cast<float>(Double()));
      case FieldDescriptor::CPPTYPE_BOOL:
        return reflection->AddBool(message, field, absl::Bernoulli(random_, 0.5));
      case FieldDescriptor::CPPTYPE_ENUM:
        return reflection->AddEnumValue(message, field, Enum(field));
      case FieldDescriptor::CPPTYPE_STRING:
        return reflection->AddString(message, field, Text());
      case FieldDescriptor::CPPTYPE_MESSAGE:
        // A map entry too: its key and value are fields 1 and 2.
        return Fill(reflection->AddMessage(message, field), depth - 1);
    }
  }

  std::mt19937_64 random_;
};

// Whether two parsed JSON values are the same, doubles to within a few
// ulps: Boost.JSON 1.74 parses some 17-digit numbers to a neighbouring
// double depending on where they fall in its input (both printers printed
// "975397.03245615051", and the two documents parsed to two values, 1 run
// in ~20). The printed bytes are compared exactly where it matters
// (EscapesStringsExactlyAsTheLibrary).
bool SameJson(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double();
    const double y = b.get_double();
    return x == y || std::fabs(x - y) <= 4 * std::numeric_limits<double>::epsilon() *
                                             std::max(std::fabs(x), std::fabs(y));
  }
  if (a.is_object() && b.is_object()) {
    const boost::json::object& left = a.get_object();
    const boost::json::object& right = b.get_object();
    if (left.size() != right.size()) return false;
    for (const auto& [key, value] : left) {
      const boost::json::value* other = right.if_contains(key);
      if (other == nullptr || !SameJson(value, *other)) return false;
    }
    return true;
  }
  if (a.is_array() && b.is_array()) {
    const boost::json::array& left = a.get_array();
    const boost::json::array& right = b.get_array();
    if (left.size() != right.size()) return false;
    for (size_t i = 0; i < left.size(); ++i) {
      if (!SameJson(left[i], right[i])) return false;
    }
    return true;
  }
  return a == b;
}

void ExpectSameJson(const Message& message) {
  const std::string fast = ToJson(message);
  const std::string library = LibraryToJson(message);
  boost::json::error_code error;
  const boost::json::value fast_value = boost::json::parse(fast, error);
  ASSERT_FALSE(error) << "not JSON: " << fast;
  const boost::json::value library_value = boost::json::parse(library, error);
  ASSERT_FALSE(error) << library;
  EXPECT_TRUE(SameJson(fast_value, library_value))
      << message.GetDescriptor()->full_name() << "\n  fast:    " << fast
      << "\n  library: " << library;
}

TEST(JsonBodyTest, PrintsWhatTheLibraryPrintsForEveryMessageTheApiSends) {
  v1::Execution execution;
  v1::ListTaskRunsResponse task_runs;
  v1::WorkflowDefinition workflow;
  v1::ListExecutionsResponse executions;
  v1::ListWorkflowsResponse workflows;
  v1::ListQueuesResponse queues;
  v1::ListAgentsResponse agents;
  v1::Event event;
  v1::AnalyzeWorkflowResponse analysis;
  v1::ApplyOptimizationsResponse applied;
  v1::PredictResourcesResponse predicted;
  Message* messages[] = {&execution, &task_runs, &workflow, &executions, &workflows, &queues,
                         &agents,    &event,     &analysis, &applied,    &predicted};
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    for (Message* message : messages) {
      message->Clear();
      Filler(seed).Fill(message, 4);
      ExpectSameJson(*message);
      if (HasFailure()) return;  // one clear mismatch, not hundreds
    }
  }
}

// Byte for byte, not only the same JSON value: strings are escaped as
// protobuf escapes them (clients and tests may compare bytes).
TEST(JsonBodyTest, EscapesStringsExactlyAsTheLibrary) {
  v1::Execution execution;
  const std::string tricky =
      "a\b\f\n\r\t\x01\x1f\"\\/<secret>&'\x7f\xc2\x80\xc2\x9f\xc2\xa0\xc2\xad"
      "\xd8\x80\xdb\x9d\xdc\x8f\xe1\x9e\xb4\xe2\x80\x8b\xe2\x80\xa8\xe2\x80\xae"
      "\xe2\x81\xa0\xe2\x81\xaa\xef\xbb\xbf\xef\xbf\xb9\xef\xbf\xbb\xef\xbf\xbc"
      "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80";
  execution.set_name(tricky);
  (*execution.mutable_context())[tricky] = tricky;
  execution.add_targets("<secret>");
  EXPECT_EQ(ToJson(execution), LibraryToJson(execution));
}

TEST(JsonBodyTest, EmptyMessagesDefaultsAndEdgeValues) {
  ExpectSameJson(v1::Execution());
  v1::Execution execution;
  execution.set_name("executions/x");
  execution.mutable_create_time()->set_seconds(0);  // present, at the epoch
  execution.mutable_create_time()->set_nanos(100000000);
  ExpectSameJson(execution);
  EXPECT_NE(ToJson(execution).find("\"1970-01-01T00:00:00.100Z\""), std::string::npos)
      << ToJson(execution);
  google::protobuf::Duration duration;
  duration.set_seconds(-1);
  duration.set_nanos(-500000000);
  EXPECT_EQ(ToJson(duration), "\"-1.500s\"");
  duration.set_seconds(0);
  EXPECT_EQ(ToJson(duration), "\"-0.500s\"");
  EXPECT_EQ(LibraryToJson(duration), "\"-0.500s\"");
}

}  // namespace
}  // namespace gyre::gateway
