"""gyre_cc_grpc_library: C++ messages and gRPC stubs from .proto files with the
system protoc and grpc_cpp_plugin (Debian packages), no download."""

def gyre_cc_grpc_library(name, srcs, proto_root = "", import_dirs = [], deps = [], **kwargs):
    """Generates <x>.pb.{h,cc} and <x>.grpc.pb.{h,cc} for each proto in `srcs`.

    Args:
      name: the cc_library to create; generated headers are included by their
        proto path ("gyre/v1/workflow.pb.h").
      srcs: proto paths relative to `proto_root`, either labels in this package
        (proto_root "") or files under an absolute system directory.
      proto_root: absolute directory the protos live in; "" for this package.
      import_dirs: extra -I directories.
      deps: cc deps of the generated code.
      **kwargs: passed to the cc_library.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc", base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    package_dir = native.package_name()
    if proto_root:
        inputs = []
        root = proto_root
        files = " ".join([proto_root + "/" + s for s in srcs])
    else:
        inputs = srcs
        root = package_dir if package_dir else "."
        files = " ".join(["$(location %s)" % s for s in srcs])
    includes = " ".join(["-I" + d for d in [root] + import_dirs + ["/usr/include"]])
    native.genrule(
        name = name + "_generate",
        srcs = inputs,
        outs = outs,
        cmd = ("protoc %s --cpp_out=$(GENDIR)/%s --grpc_out=$(GENDIR)/%s " +
               "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) %s") %
              (includes, package_dir, package_dir, files),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["//third_party:grpc"],
        **kwargs
    )
