# The dependency rule between the parts (DESIGN.md's layout table), checked
# when CMake configures: a source file may include headers only from its own
# folder and from the folders its part may depend on. Every part includes
# headers as "part/file.h" from the top of the tree, so one include path
# serves all, and this check is what keeps "protocol never depends on the
# engine" a fact rather than a comment.
#
# ferry_layer(FOLDER ALLOWED...) -- FOLDER is relative to the top; ALLOWED
# are folder prefixes of the headers its files may include (its own folder is
# always allowed). A deeper rule for a sub-folder replaces the rule of its
# parent for the files below it.
set_property(GLOBAL PROPERTY FERRY_LAYERS "")

function(ferry_layer folder)
  list(JOIN ARGN "," allowed)
  set_property(GLOBAL APPEND PROPERTY FERRY_LAYERS "${folder}=${allowed}")
endfunction()

# The rule that governs `file` (relative path): the longest matching folder.
function(_ferry_rule_for file out_folder out_allowed)
  get_property(layers GLOBAL PROPERTY FERRY_LAYERS)
  set(best "")
  set(best_allowed "")
  foreach(entry IN LISTS layers)
    string(FIND "${entry}" "=" eq)
    string(SUBSTRING "${entry}" 0 ${eq} folder)
    math(EXPR from "${eq} + 1")
    string(SUBSTRING "${entry}" ${from} -1 allowed)
    string(LENGTH "${folder}" len)
    string(LENGTH "${best}" best_len)
    if(file MATCHES "^${folder}/" AND len GREATER best_len)
      set(best "${folder}")
      set(best_allowed "${allowed}")
    endif()
  endforeach()
  set(${out_folder} "${best}" PARENT_SCOPE)
  string(REPLACE "," ";" best_allowed "${best_allowed}")
  set(${out_allowed} "${best_allowed}" PARENT_SCOPE)
endfunction()

function(ferry_check_layers)
  get_property(layers GLOBAL PROPERTY FERRY_LAYERS)
  set(violations "")
  foreach(entry IN LISTS layers)
    string(FIND "${entry}" "=" eq)
    string(SUBSTRING "${entry}" 0 ${eq} top)
    file(GLOB_RECURSE files RELATIVE ${PROJECT_SOURCE_DIR}
         ${PROJECT_SOURCE_DIR}/${top}/*.h ${PROJECT_SOURCE_DIR}/${top}/*.cc)
    foreach(f IN LISTS files)
      _ferry_rule_for("${f}" folder allowed)
      if(NOT folder STREQUAL top)
        continue()  # a deeper rule governs it
      endif()
      file(STRINGS ${PROJECT_SOURCE_DIR}/${f} includes REGEX "^#include \"[a-z_]+/")
      foreach(line IN LISTS includes)
        string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header "${line}")
        set(ok FALSE)
        foreach(prefix IN LISTS allowed ITEMS ${folder})
          if(header MATCHES "^${prefix}/")
            set(ok TRUE)
          endif()
        endforeach()
        if(NOT ok)
          list(APPEND violations "  ${f} includes ${header} (${folder}/ may use: ${allowed})")
        endif()
      endforeach()
    endforeach()
  endforeach()
  if(violations)
    list(JOIN violations "\n" text)
    message(FATAL_ERROR "A part depends on one it may not (DESIGN.md, cmake/layering.cmake):\n${text}")
  endif()
endfunction()
