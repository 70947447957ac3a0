# The replica's layers and the directions they may depend in: the one table that
# replica/CMakeLists.txt (the link graph, checked at configure time) and check_layers.cmake (the
# includes, checked at build time and by the `replica layers` test) both read.
# docs/replica.md ("Modules and layers") explains the table.
#
# serve_replica_layer(<name> TARGET <library> PATHS <path>... [USES <layer>...])
#   PATHS: folders (or single files) under replica/; a file belongs to the layer with the
#   longest matching path, so runtime/python is not part of runtime.
#   USES: the layers directly below this one. What they use is allowed too (CMake passes a
#   PUBLIC dependency's headers on anyway); anything else, above or beside, is refused.
#
# Keep this file free of anything but the table and the functions over it: it also runs in
# script mode (cmake -P), where there are no targets.

set(SERVE_REPLICA_LAYERS "")

macro(serve_replica_layer name)
  cmake_parse_arguments(_layer "" "TARGET" "PATHS;USES" ${ARGN})
  list(APPEND SERVE_REPLICA_LAYERS ${name})
  set(SERVE_REPLICA_LAYER_${name}_TARGET ${_layer_TARGET})
  set(SERVE_REPLICA_LAYER_${name}_PATHS ${_layer_PATHS})
  set(SERVE_REPLICA_LAYER_${name}_USES ${_layer_USES})
endmacro()

# Lowest first. types, metrics and health are side by side at the bottom: none may use another.
serve_replica_layer(types    TARGET serve_replica_types    PATHS types)
serve_replica_layer(metrics  TARGET serve_replica_metrics  PATHS metrics)
serve_replica_layer(health   TARGET serve_replica_health   PATHS health)
serve_replica_layer(runtime  TARGET serve_replica_runtime  PATHS runtime         USES types)
serve_replica_layer(python   TARGET serve_replica_python   PATHS runtime/python  USES runtime)
serve_replica_layer(cuda     TARGET serve_cuda_mlp         PATHS runtime/cuda    USES runtime)
serve_replica_layer(batch    TARGET serve_replica_batch    PATHS batch           USES runtime)
serve_replica_layer(core     TARGET serve_replica_core_lib PATHS core            USES batch metrics)
serve_replica_layer(frontend TARGET serve_replica_frontend PATHS frontend        USES core health)
serve_replica_layer(app      TARGET serve_replica_app      PATHS app main.cc
                             USES frontend python cuda)

# serve_replica_layer_of(<out> <path relative to replica/>): the layer the file belongs to, or "".
function(serve_replica_layer_of out path)
  set(best "")
  set(best_length 0)
  foreach(layer IN LISTS SERVE_REPLICA_LAYERS)
    foreach(prefix IN LISTS SERVE_REPLICA_LAYER_${layer}_PATHS)
      string(LENGTH "${prefix}" length)
      if((path STREQUAL prefix OR path MATCHES "^${prefix}/") AND length GREATER best_length)
        set(best ${layer})
        set(best_length ${length})
      endif()
    endforeach()
  endforeach()
  set(${out} "${best}" PARENT_SCOPE)
endfunction()

# serve_replica_layer_allowed(<out> <layer>): the layer itself and every layer below it that its
# USES reach.
function(serve_replica_layer_allowed out layer)
  set(allowed ${layer})
  set(pending ${SERVE_REPLICA_LAYER_${layer}_USES})
  while(pending)
    list(POP_FRONT pending next)
    if(NOT next IN_LIST allowed)
      list(APPEND allowed ${next})
      list(APPEND pending ${SERVE_REPLICA_LAYER_${next}_USES})
    endif()
  endwhile()
  set(${out} ${allowed} PARENT_SCOPE)
endfunction()
