// The what-if page: copy plan A's rows into plan B, and say that a run is on its way (the
// server renders the results; nothing else happens in the browser).
"use strict";
(() => {
  const form = document.getElementById("whatif-form");
  document.getElementById("copy-a").addEventListener("click", () => {
    for (const field of form.querySelectorAll("[name^='a_']")) {
      const twin = form.elements.namedItem("b_" + field.name.slice(2));
      if (twin) twin.value = field.value;
    }
  });
  form.addEventListener("submit", () => {
    document.getElementById("whatif-run").disabled = true;
    document.getElementById("whatif-running").hidden = false;
  });
})();
