# embed.cmake - writes the bytes of IN as the body of a C array initializer
# to OUT (one "0x.., " per byte, 16 to a line), so a text file such as
# status_page.html stays a readable file in the tree and is compiled in.
# With -DMARK=text the build fails when IN does not contain text.
# Usage: cmake -DIN=file -DOUT=file.inc [-DMARK=text] -P embed.cmake
if(DEFINED MARK)
  file(READ "${IN}" text)
  string(FIND "${text}" "${MARK}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${IN}: no ${MARK}")
  endif()
endif()
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" hex "${hex}")
file(WRITE "${OUT}.tmp" "/* generated from ${IN} by embed.cmake: do not edit */\n${hex}\n")
file(RENAME "${OUT}.tmp" "${OUT}")
