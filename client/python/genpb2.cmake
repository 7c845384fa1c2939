# genpb2.cmake - cmake -DPROTOC=... -DPROTO_DIR=... -DOUT=... -P genpb2.cmake
# Generates the Python protobuf modules of the control RPC into OUT (the
# package directory) and makes their imports of each other package-relative
# (protoc writes `import common_pb2 as ...`, which only works at top level).
execute_process(COMMAND ${PROTOC} -I${PROTO_DIR} --python_out=${OUT}
    common.proto control.proto RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "protoc --python_out failed: ${err}")
endif()
foreach(f common_pb2.py control_pb2.py)
  file(READ ${OUT}/${f} text)
  string(REGEX REPLACE "\nimport ([a-z_]+_pb2) as " "\nfrom . import \\1 as " text "${text}")
  file(WRITE ${OUT}/${f} "${text}")
endforeach()
