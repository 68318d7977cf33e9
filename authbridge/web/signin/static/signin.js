// Progressive enhancement only: every page works without this script.
// The device code box upper-cases what is typed and puts the dash in (BCDF-GHJK).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("input[data-user-code]")) {
    box.addEventListener("input", () => {
      const letters = box.value.toUpperCase().replace(/[^A-Z0-9]/g, "").slice(0, 8);
      box.value = letters.length > 4 ? `${letters.slice(0, 4)}-${letters.slice(4)}` : letters;
    });
  }
});
