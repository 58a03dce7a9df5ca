#include "services/gateway/json_body.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "libs/common/json_escape.h"

namespace gyre::gateway {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Valid ranges of google.protobuf.Timestamp (0001-01-01 to 9999-12-31) and
// Duration (+-10,000 years), as the canonical mapping defines them.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
constexpr int64_t kMaxDurationSeconds = 315576000000;

// The library's printer, for what the fast one leaves to it.
std::string LibraryJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a well-formed message cannot fail short of a bug in protobuf.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// protobuf's SimpleDtoa/SimpleFtoa: the shortest of %.15g/%.17g (%.6g/%.9g)
// that reads back as the same value, so numbers print as the library does.
void AppendDouble(double value, std::string* out) {
  if (std::isnan(value)) return out->append("\"NaN\""), void();
  if (std::isinf(value)) return out->append(value > 0 ? "\"Infinity\"" : "\"-Infinity\""), void();
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.*g", DBL_DIG, value);
  if (std::strtod(buffer, nullptr) != value) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", DBL_DIG + 2, value);
  }
  out->append(buffer);
}

void AppendFloat(float value, std::string* out) {
  if (std::isnan(value)) return out->append("\"NaN\""), void();
  if (std::isinf(value)) return out->append(value > 0 ? "\"Infinity\"" : "\"-Infinity\""), void();
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.*g", FLT_DIG, static_cast<double>(value));
  if (std::strtof(buffer, nullptr) != value) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", FLT_DIG + 3, static_cast<double>(value));
  }
  out->append(buffer);
}

// Nanoseconds as the mapping writes them: none, or 3, 6 or 9 digits.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  char buffer[16];
  if (nanos % 1000000 == 0) {
    std::snprintf(buffer, sizeof(buffer), ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    std::snprintf(buffer, sizeof(buffer), ".%06d", nanos / 1000);
  } else {
    std::snprintf(buffer, sizeof(buffer), ".%09d", nanos);
  }
  out->append(buffer);
}

// google.protobuf.Timestamp and Duration: false when out of their range
// (the library then decides).
bool AppendTimestamp(const Message& message, std::string* out) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  const int64_t seconds = reflection->GetInt64(message, descriptor->field(0));
  const int32_t nanos = reflection->GetInt32(message, descriptor->field(1));
  if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds || nanos < 0 ||
      nanos > 999999999) {
    return false;
  }
  const absl::CivilSecond civil =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "\"%04d-%02d-%02dT%02d:%02d:%02d",
                static_cast<int>(civil.year()), civil.month(), civil.day(), civil.hour(),
                civil.minute(), civil.second());
  out->append(buffer);
  AppendNanos(nanos, out);
  out->append("Z\"");
  return true;
}

bool AppendDuration(const Message& message, std::string* out) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  const int64_t seconds = reflection->GetInt64(message, descriptor->field(0));
  const int32_t nanos = reflection->GetInt32(message, descriptor->field(1));
  if (seconds < -kMaxDurationSeconds || seconds > kMaxDurationSeconds || nanos <= -1000000000 ||
      nanos >= 1000000000 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return false;
  }
  out->push_back('"');
  if (seconds < 0 || nanos < 0) out->push_back('-');
  absl::StrAppend(out, seconds < 0 ? -seconds : seconds);
  AppendNanos(nanos < 0 ? -nanos : nanos, out);
  out->append("s\"");
  return true;
}

// Length of the valid UTF-8 sequence at s[i] and its code point; 0 when
// invalid.
size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t length = 0;
  uint32_t value = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, value = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, value = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  if ((length == 3 && (value < 0x800 || (value >= 0xD800 && value <= 0xDFFF))) ||
      (length == 4 && (value < 0x10000 || value > 0x10FFFF))) {
    return 0;
  }
  *code_point = value;
  return length;
}

// Code points protobuf's printer escapes although JSON allows them raw
// (invisible or line-breaking ones), so replies stay byte for byte what
// clients got before.
bool EscapedCodePoint(uint32_t c) {
  return (c >= 0x80 && c <= 0x9F) || c == 0xAD || (c >= 0x600 && c <= 0x603) || c == 0x6DD ||
         c == 0x70F || c == 0x17B4 || c == 0x17B5 || (c >= 0x200B && c <= 0x200F) ||
         (c >= 0x2028 && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB);
}

// A string value escaped as protobuf's printer escapes it ("<" as \u003c
// and so on); invalid UTF-8 (which proto3 strings never hold) as U+FFFD.
void AppendString(absl::string_view value, std::string* out) {
  out->push_back('"');
  char escape[16];
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\b':
          out->append("\\b");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\f':
          out->append("\\f");
          break;
        case '\r':
          out->append("\\r");
          break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == 0x7F) {
            std::snprintf(escape, sizeof(escape), "\\u%04x", c);
            out->append(escape);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      continue;
    }
    uint32_t code_point = 0;
    const size_t length = DecodeUtf8(value, i, &code_point);
    if (length == 0) {
      out->append("\\ufffd");
      continue;
    }
    if (EscapedCodePoint(code_point)) {
      std::snprintf(escape, sizeof(escape), "\\u%04x", code_point);
      out->append(escape);
    } else {
      out->append(value.data() + i, length);
    }
    i += length - 1;
  }
  out->push_back('"');
}

void AppendMessage(const Message& message, std::string* out);

// A map key: always a JSON string.
void AppendMapKey(const Message& entry, const FieldDescriptor* key, std::string* out) {
  const Reflection* reflection = entry.GetReflection();
  switch (key->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      AppendString(reflection->GetString(entry, key), out);
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append(reflection->GetBool(entry, key) ? "\"true\"" : "\"false\"");
      return;
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, "\"", reflection->GetInt32(entry, key), "\"");
      return;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, "\"", reflection->GetUInt32(entry, key), "\"");
      return;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"", reflection->GetInt64(entry, key), "\"");
      return;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", reflection->GetUInt64(entry, key), "\"");
      return;
    default:
      out->append("\"\"");  // no other key type exists
  }
}

// One value of `field` (element `index` when repeated, else -1).
void AppendValue(const Message& message, const FieldDescriptor* field, int index,
                 std::string* out) {
  const Reflection* reflection = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, repeated ? reflection->GetRepeatedInt32(message, field, index)
                                    : reflection->GetInt32(message, field));
      return;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, repeated ? reflection->GetRepeatedUInt32(message, field, index)
                                    : reflection->GetUInt32(message, field));
      return;
    // 64-bit integers are strings in the mapping (JavaScript's numbers
    // cannot hold them).
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection->GetRepeatedInt64(message, field, index)
                               : reflection->GetInt64(message, field),
                      "\"");
      return;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection->GetRepeatedUInt64(message, field, index)
                               : reflection->GetUInt64(message, field),
                      "\"");
      return;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(repeated ? reflection->GetRepeatedDouble(message, field, index)
                            : reflection->GetDouble(message, field),
                   out);
      return;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(repeated ? reflection->GetRepeatedFloat(message, field, index)
                           : reflection->GetFloat(message, field),
                  out);
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((repeated ? reflection->GetRepeatedBool(message, field, index)
                            : reflection->GetBool(message, field))
                      ? "true"
                      : "false");
      return;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = repeated ? reflection->GetRepeatedEnumValue(message, field, index)
                                  : reflection->GetEnumValue(message, field);
      const auto* value = field->enum_type()->FindValueByNumber(number);
      if (value != nullptr) {
        AppendJsonString(value->name(), out);
      } else {
        absl::StrAppend(out, number);  // a value this build does not know
      }
      return;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& value =
          repeated ? reflection->GetRepeatedStringReference(message, field, index, &scratch)
                   : reflection->GetStringReference(message, field, &scratch);
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        absl::StrAppend(out, "\"", absl::Base64Escape(value), "\"");
      } else {
        AppendString(value, out);
      }
      return;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(repeated ? reflection->GetRepeatedMessage(message, field, index)
                             : reflection->GetMessage(message, field),
                    out);
      return;
  }
}

void AppendMessage(const Message& message, std::string* out) {
  const Descriptor* descriptor = message.GetDescriptor();
  if (descriptor->well_known_type() != Descriptor::WELLKNOWNTYPE_UNSPECIFIED ||
      absl::StartsWith(descriptor->file()->name(), "google/protobuf/")) {
    // Timestamps and durations are on every execution and task: printed
    // here. The rarer well-known types (Struct, Value, wrappers, Any, ...)
    // have mappings of their own: the library prints them.
    if (descriptor->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP &&
        AppendTimestamp(message, out)) {
      return;
    }
    if (descriptor->well_known_type() == Descriptor::WELLKNOWNTYPE_DURATION &&
        AppendDuration(message, out)) {
      return;
    }
    out->append(LibraryJson(message));
    return;
  }
  const Reflection* reflection = message.GetReflection();
  // The fields a binary serialization would carry, by number: what the
  // mapping prints without always_print_primitive_fields.
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  out->push_back('{');
  bool first = true;
  for (const FieldDescriptor* field : fields) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(field->name(), out);
    out->push_back(':');
    if (field->is_map()) {
      const FieldDescriptor* key = field->message_type()->map_key();
      const FieldDescriptor* value = field->message_type()->map_value();
      out->push_back('{');
      const int size = reflection->FieldSize(message, field);
      for (int i = 0; i < size; ++i) {
        const Message& entry = reflection->GetRepeatedMessage(message, field, i);
        if (i > 0) out->push_back(',');
        AppendMapKey(entry, key, out);
        out->push_back(':');
        AppendValue(entry, value, -1, out);
      }
      out->push_back('}');
    } else if (field->is_repeated()) {
      out->push_back('[');
      const int size = reflection->FieldSize(message, field);
      for (int i = 0; i < size; ++i) {
        if (i > 0) out->push_back(',');
        AppendValue(message, field, i, out);
      }
      out->push_back(']');
    } else {
      AppendValue(message, field, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  json.reserve(256);
  AppendMessage(message, &json);
  return json;
}

std::string LibraryToJson(const google::protobuf::Message& message) { return LibraryJson(message); }

absl::Status FromJson(absl::string_view json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request body is not a valid ",
                                                   message->GetDescriptor()->name(),
                                                   " in JSON: ", status.message().ToString()));
  }
  return absl::OkStatus();
}

std::string JsonString(absl::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

}  // namespace gyre::gateway
