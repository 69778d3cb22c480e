// Editor code shared by the apigear-service and apigear-client edit dialogs, which have the same interface
// declaration UI (module YAML or a member list, interface picker, topic summary). Node-RED serves it from the
// package's resources/ folder; each .html loads it with <script src="resources/@busbar/node-red-buses/...">
// before its own registerType, whose validators and oneditprepare/-save/-cancel/-resize call these.
// ns is the node type: its message catalog holds the dialog's texts.
(function () {
    // Validators of the fields both nodes declare; node is the validated node (this), ns its type, whose catalog
    // holds the messages.
    function message(node, ns, key, args) {
        return node._ ? node._(ns + '.errors.' + key, args) : RED._('@busbar/node-red-buses/apigear:' + ns + '.errors.' + key, args);
    }

    var validate = {
        moduleYaml: function (node, ns, v) {
            if (node.source === 'members') { return true; }
            return (typeof v === 'string' && /(^|\n)\s*interfaces\s*:/.test(v)) || message(node, ns, 'moduleYaml');
        },
        module: function (node, ns, v) {
            if (node.source !== 'members') { return true; }
            return /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(v || '') || message(node, ns, 'module');
        },
        interface: function (node, ns, v) {
            return /^[A-Za-z_][A-Za-z0-9_]*$/.test(v || '') || message(node, ns, 'interface');
        },
        members: function (node, ns, v) {
            if (node.source !== 'members') { return true; }
            if (!Array.isArray(v) || v.length === 0) { return message(node, ns, 'members'); }
            for (var i = 0; i < v.length; i++) {
                if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(v[i].name || '')) {
                    return message(node, ns, 'memberName', { n: i + 1 });
                }
            }
            return true;
        },
        clientId: function (node, ns, v) {
            return !v || /^[^\s+#/]{1,128}$/.test(v) || message(node, ns, 'clientId');
        }
    };

    function prepare(node, ns) {
        $('#node-input-qos').val(String(node.qos === undefined ? 1 : node.qos));

        node._yamlEditor = RED.editor.createEditor({
            id: 'node-input-moduleYaml-editor',
            mode: 'yaml',
            value: node.moduleYaml || '',
            // Monaco's minimap takes ~50 px of a tray-wide editor and cut the example's longer lines off behind a
            // horizontal scrollbar; a module declaration is short enough to do without it (Ace ignores this).
            minimap: { enabled: false }
        });

        var $select = $('#node-input-interface-select');
        var $summary = $('#node-input-apigear-summary');
        var parsed = null;

        function esc(s) { return $('<span/>').text(s).html(); }

        function showSummary() {
            $summary.empty();
            if (!parsed) { return; }
            var itf = parsed.interfaces.filter(function (i) { return i.name === $('#node-input-interface').val(); })[0];
            if (!itf) { return; }
            var rows = [];
            itf.properties.forEach(function (p) { rows.push('<li><code>prop/' + esc(p.name) + '</code> : ' + esc(p.type) + (p.readonly ? ' (readonly)' : '') + '</li>'); });
            itf.signals.forEach(function (s) { rows.push('<li><code>sig/' + esc(s.name) + '</code> (' + esc(s.params) + ')</li>'); });
            itf.operations.forEach(function (o) { rows.push('<li><code>rpc/' + esc(o.name) + '</code> (' + esc(o.params) + ') &rarr; ' + esc(o.returns) + '</li>'); });
            $summary.html('<div>' + esc(node._(ns + '.label.topics', { prefix: parsed.module + '/' + itf.name })) + '</div><ul>' + rows.join('') + '</ul>');
        }

        function fillInterfaces() {
            var current = $('#node-input-interface').val();
            $select.empty();
            if (!parsed) { return; }
            parsed.interfaces.forEach(function (i) { $('<option/>').val(i.name).text(i.name).appendTo($select); });
            if (!current || !parsed.interfaces.some(function (i) { return i.name === current; })) {
                current = parsed.interfaces.length ? parsed.interfaces[0].name : '';
            }
            $select.val(current);
            $('#node-input-interface').val(current);
            showSummary();
        }

        var timer = null;
        function parse() {
            var text = node._yamlEditor.getValue();
            if (!text.trim()) {
                parsed = null;
                $('#node-input-apigear-error').text(node._(ns + '.errors.moduleYaml'));
                fillInterfaces();
                return;
            }
            $.ajax({
                url: 'busbar/apigear/module',
                type: 'POST',
                contentType: 'application/json',
                data: JSON.stringify({ yaml: text })
            }).done(function (result) {
                parsed = result;
                $('#node-input-apigear-error').text('');
                fillInterfaces();
            }).fail(function (xhr) {
                parsed = null;
                var message = (xhr.responseJSON && xhr.responseJSON.error) || xhr.statusText;
                $('#node-input-apigear-error').text(message);
                $summary.empty();
            }).always(function () {
                // The topic summary / error line changed height: fit the editor again.
                relayout(node);
            });
        }
        node._yamlEditor.getSession().on('change', function () {
            clearTimeout(timer);
            timer = setTimeout(function () {
                // The dialog may have been closed (Done/Cancel destroy the editor) before the timer fires.
                if (node._yamlEditor) { parse(); }
            }, 400);
        });
        $select.on('change', function () {
            $('#node-input-interface').val($select.val());
            showSummary();
        });

        var $members = $('#node-input-members-container').css('min-height', '150px').editableList({
            height: 220,
            addItem: function (row, index, data) {
                var $kind = $('<select/>', { class: 'node-input-member-kind', style: 'width:22%; margin-right:1%' }).appendTo(row);
                ['property', 'operation', 'signal'].forEach(function (k) {
                    $('<option/>').val(k).text(node._(ns + '.kind.' + k)).appendTo($kind);
                });
                $('<input/>', { type: 'text', class: 'node-input-member-name', placeholder: node._(ns + '.placeholder.memberName'), style: 'width:24%; margin-right:1%' }).appendTo(row);
                $('<input/>', { type: 'text', class: 'node-input-member-params', placeholder: node._(ns + '.placeholder.params'), style: 'width:33%; margin-right:1%' }).appendTo(row);
                $('<input/>', { type: 'text', class: 'node-input-member-type', placeholder: node._(ns + '.placeholder.type'), style: 'width:17%' }).appendTo(row);
                $kind.on('change', function () {
                    row.find('.node-input-member-params').toggle($kind.val() !== 'property');
                });
                $kind.val(data.kind || 'property');
                row.find('.node-input-member-name').val(data.name || '');
                row.find('.node-input-member-params').val(data.params || '');
                row.find('.node-input-member-type').val(data.type || '');
                $kind.trigger('change');
            },
            removable: true,
            sortable: true
        });
        (node.members || []).forEach(function (m) { $members.editableList('addItem', m); });

        $('#node-input-source').on('change', function () {
            var yaml = $(this).val() !== 'members';
            $('.apigear-source-yaml').toggle(yaml);
            $('.apigear-source-members').toggle(!yaml);
            $('#node-input-interface').toggle(!yaml);
            $select.toggle(yaml);
            if (yaml) { parse(); relayout(node); }
        });
        $('#node-input-source').val(node.source || 'yaml').trigger('change');
    }

    function save(node) {
        node.moduleYaml = node._yamlEditor.getValue();
        node._yamlEditor.destroy();
        delete node._yamlEditor;
        delete node._apigearSize;
        var members = [];
        $('#node-input-members-container').editableList('items').each(function () {
            var m = {
                kind: $(this).find('.node-input-member-kind').val(),
                name: $(this).find('.node-input-member-name').val().trim()
            };
            var type = $(this).find('.node-input-member-type').val().trim();
            var params = $(this).find('.node-input-member-params').val().trim();
            if (type) { m.type = type; }
            if (params && m.kind !== 'property') { m.params = params; }
            members.push(m);
        });
        node.members = members;
        node.qos = Number($('#node-input-qos').val());
    }

    function cancel(node) {
        node._yamlEditor.destroy();
        delete node._yamlEditor;
        delete node._apigearSize;
    }

    // Height of the YAML editor: as tall as its text (a few lines more to type into), at least 200 px, at most
    // 600 px (longer modules scroll), and never more than the space the other rows leave in the tray. Filling all
    // the space the way the core function node does stretched an empty editor to ~870 px in a tall window.
    var LINE_PX = 19, MIN_PX = 200, MAX_PX = 600;
    function relayout(node) {
        var editor = node._yamlEditor, size = node._apigearSize;
        var $box = $('#node-input-moduleYaml-editor');
        if (!editor || !size || !$box.is(':visible')) { return; }
        var rows = $('#dialog-form>div:not(.node-input-apigear-grow)');
        var available = size.height;
        for (var i = 0; i < rows.length; i++) {
            if ($(rows[i]).is(':visible')) { available -= $(rows[i]).outerHeight(true); }
        }
        available -= $('#node-input-apigear-error').outerHeight(true) + 20;
        var lines = editor.getSession().getLength ? editor.getSession().getLength() : 1;
        var wanted = Math.min(MAX_PX, Math.max(MIN_PX, (lines + 3) * LINE_PX));
        var height = Math.max(160, Math.min(wanted, available));
        if (Math.abs($box.height() - height) > 1) { $box.css('height', height + 'px'); }
        // Lay the editor out for the box as it is now: the tray may still have been growing when it was created.
        editor.resize();
    }

    function resize(node, size) {
        node._apigearSize = { width: size.width, height: size.height };
        relayout(node);
    }

    window.BusbarApiGearEditor = { validate: validate, prepare: prepare, save: save, cancel: cancel, resize: resize };
})();
