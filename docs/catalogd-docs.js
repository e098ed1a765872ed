/* catalogd-docs.js - starts Swagger UI on GET /docs with this server's own /openapi.json.
 * The document's "servers" name the `make run` address; the page replaces them with the
 * origin it was loaded from, so "Try it out" talks to this very server (same origin: the
 * Host and Origin checks for writes pass, and the page's Content-Security-Policy allows it). */
"use strict";
(function () {
    function show(doc) {
        doc.servers = [{ url: window.location.origin, description: "this server" }];
        window.ui = SwaggerUIBundle({
            spec: doc,
            dom_id: "#swagger-ui",
            presets: [SwaggerUIBundle.presets.apis],
            layout: "BaseLayout",
            deepLinking: true,
            validatorUrl: null, /* no call to an online validator */
            tryItOutEnabled: false,
            displayRequestDuration: true,
            persistAuthorization: false
        });
    }
    fetch("/openapi.json", { headers: { Accept: "application/json" } })
        .then(function (resp) {
            if (!resp.ok) throw new Error("GET /openapi.json: " + resp.status);
            return resp.json();
        })
        .then(show)
        .catch(function (err) {
            var box = document.getElementById("swagger-ui");
            box.textContent = "Could not load /openapi.json: " + err.message;
        });
})();
