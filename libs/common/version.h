#ifndef GYRE_LIBS_COMMON_VERSION_H_
#define GYRE_LIBS_COMMON_VERSION_H_

namespace gyre {

// The Gyre release this build belongs to; reported in gyre_build_info,
// agent registration and `gyre version`.
inline constexpr char kGyreVersion[] = "0.1.0";

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_VERSION_H_
