# Refuses a replica source file that includes a header of a layer it may not use (layers.cmake):
# one above it, or one beside it. Linking catches an upward call only; a header-only use (an
# inline function, a struct, a template) would slip through, and the include paths cannot stop
# it because every layer needs the project root for common/ and the layers' headers live
# there too. So the includes themselves are checked.
#
#   cmake -P replica/check_layers.cmake                         checks replica/
#   cmake -DSERVE_LAYERS_SELF_TEST=ON -P replica/check_layers.cmake
#       checks the checker: a made-up upward include must be reported and a legal one not.
#
# Reports are compiler-style (file:line: error: ...) so that editors can jump to them. A file in
# no layer is an error too, so that a new folder is placed in the table before it is used.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/layers.cmake)

# serve_replica_check_file(<errors-out> <path relative to replica/> <contents>)
function(serve_replica_check_file out path contents)
  set(errors "")
  serve_replica_layer_of(layer "${path}")
  if(NOT layer)
    string(CONCAT error "replica/${path}:1: error: in no layer of replica/layers.cmake "
                        "(add its folder to one there)")
    set(${out} "${error}" PARENT_SCOPE)
    return()
  endif()
  serve_replica_layer_allowed(allowed ${layer})
  # Both spellings of an include; the project writes "replica/<module>/x.h".
  string(REGEX MATCHALL "#[ \t]*include[ \t]*[\"<]replica/[^\">]+[\">]" includes "${contents}")
  foreach(include IN LISTS includes)
    string(REGEX REPLACE "^#[ \t]*include[ \t]*[\"<]replica/([^\">]+)[\">]$" "\\1"
           target "${include}")
    serve_replica_layer_of(target_layer "${target}")
    if(target_layer AND target_layer IN_LIST allowed)
      continue()
    endif()
    # The line number: newlines before the include's first occurrence.
    string(FIND "${contents}" "${include}" offset)
    string(SUBSTRING "${contents}" 0 ${offset} before)
    string(REGEX MATCHALL "\n" newlines "${before}")
    list(LENGTH newlines line)
    math(EXPR line "${line} + 1")
    if(NOT target_layer)
      set(why "replica/${target} is in no layer")
    else()
      list(REMOVE_ITEM allowed ${layer})
      list(JOIN allowed ", " may)
      if(NOT may)
        set(may "nothing else in replica/")
      endif()
      set(why "layer '${layer}' may not use layer '${target_layer}' (it may use: ${may})")
    endif()
    list(APPEND errors "replica/${path}:${line}: error: includes \"replica/${target}\": ${why}")
  endforeach()
  set(${out} "${errors}" PARENT_SCOPE)
endfunction()

if(SERVE_LAYERS_SELF_TEST)
  serve_replica_check_file(errors "types/tensor.h"
    "#pragma once\n\n#include \"replica/core/admission.h\"\n")
  string(CONCAT want "replica/types/tensor.h:3: error: includes \"replica/core/admission.h\": "
                     "layer 'types' may not use layer 'core' "
                     "(it may use: nothing else in replica/)")
  if(NOT errors STREQUAL want)
    message(SEND_ERROR "an upward include: got [${errors}], want [${want}]")
  endif()
  serve_replica_check_file(errors "runtime/python/worker.h"
    "#include \"replica/runtime/cuda/mlp_cuda.h\"\n")
  if(NOT errors MATCHES "layer 'python' may not use layer 'cuda'")
    message(SEND_ERROR "a sideways include: got [${errors}]")
  endif()
  string(CONCAT legal "#include \"replica/types/tensor.h\"\n#  include <replica/runtime/model.h>\n"
                      "#include \"replica/frontend/wire_status.h\"\n")
  serve_replica_check_file(errors "frontend/kserve_json.h" "${legal}")
  if(errors)
    message(SEND_ERROR "legal includes refused: ${errors}")
  endif()
  serve_replica_check_file(errors "tools/x.cc" "")
  if(NOT errors MATCHES "in no layer")
    message(SEND_ERROR "a file in no layer: got [${errors}]")
  endif()
  return()
endif()

get_filename_component(replica_dir ${CMAKE_CURRENT_LIST_DIR} ABSOLUTE)
file(GLOB_RECURSE files RELATIVE ${replica_dir}
  ${replica_dir}/*.h ${replica_dir}/*.hpp ${replica_dir}/*.cc ${replica_dir}/*.cpp
  ${replica_dir}/*.cu ${replica_dir}/*.cuh)
set(count 0)
foreach(file IN LISTS files)
  file(READ ${replica_dir}/${file} contents)
  serve_replica_check_file(errors "${file}" "${contents}")
  foreach(error IN LISTS errors)
    message("${error}")
    math(EXPR count "${count} + 1")
  endforeach()
endforeach()
if(count GREATER 0)
  message(FATAL_ERROR "${count} problem(s) with the replica's layering; the table and its "
                      "reasons: replica/layers.cmake and docs/replica.md (Modules and layers)")
endif()
