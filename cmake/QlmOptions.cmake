# Warning and sanitizer settings, applied per target (never to a parent project).
function(qlm_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wno-psabi)
  if(QLM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(QLM_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()
