# Warnings for convgrad's own targets only (third-party code keeps its own flags).
function(convgrad_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
  # GCC 12 reports -Wrestrict inside libstdc++'s std::string operator+ when it inlines it
  # (GCC bug 105651, fixed in GCC 13); the warning moves with inlining decisions, so it is
  # silenced for that compiler rather than worked around at each call site.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
  endif()
  if(CONVGRAD_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
endfunction()
