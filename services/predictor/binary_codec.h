#ifndef GYRE_SERVICES_PREDICTOR_BINARY_CODEC_H_
#define GYRE_SERVICES_PREDICTOR_BINARY_CODEC_H_

#include <cstring>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace gyre::predictor {

// The model file's fixed-width fields, in the machine's byte order (the file
// is read back only by the machine, and version, that wrote it).
template <typename T>
void PutRaw(const T& value, std::string* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Reads one field and advances `in`; false when `in` is too short.
template <typename T>
bool GetRaw(absl::string_view* in, T* value) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (in->size() < sizeof(T)) return false;
  std::memcpy(value, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_BINARY_CODEC_H_
