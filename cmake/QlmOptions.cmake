# Warning and sanitizer settings, applied per target (never to a parent project).
function(qlm_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wno-psabi)
  if(QLM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(QLM_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # ASan's instrumentation makes GCC's flow-based uninitialized checks report false positives
      # (e.g. inside libstdc++'s <regex>); the Release build keeps these warnings as errors.
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
    endif()
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
  if(QLM_TSAN)
    # Threads are checked through the spin pool (libgomp is not instrumented: its barriers look
    # like races to TSan), so these builds' tests run with the default pool.
    target_compile_options(${target} PUBLIC -fsanitize=thread -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=thread)
  endif()
endfunction()
