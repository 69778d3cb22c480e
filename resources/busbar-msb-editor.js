// Editor code shared by the msb-event-out and msb-function-in edit dialogs, which declare their data format the
// same way (simple type or complex JSON schema, array flag). Node-RED serves it from the package's resources/
// folder; each .html loads it with <script src="resources/@busbar/node-red-buses/..."> before its own
// registerType, whose validators and oneditprepare/-save/-cancel/-resize call these.
(function () {
    var SIMPLE = ['string', 'int32', 'int64', 'float', 'double', 'boolean', 'date-time', 'byte'];

    function schemaProblem(dataType, schema) {
        if (dataType !== 'complex') { return null; }
        if (!schema || !String(schema).trim()) { return 'empty'; }
        try {
            var v = JSON.parse(schema);
            return v && typeof v === 'object' && !Array.isArray(v) ? null : 'object';
        } catch (e) {
            return 'json';
        }
    }

    // Fills the data type select, opens the schema editor and keeps the schema/array rows and the schema problem
    // line in step with the type. Returns the select; the caller triggers its 'change' when the rows should show.
    function prepareDataFormat(node) {
        var type = $('#node-input-dataType');
        SIMPLE.forEach(function (t) { type.append($('<option>').val(t).text(node._('msb.dataType.' + t))); });
        type.append($('<option>').val('complex').text(node._('msb.dataType.complex')));
        type.append($('<option>').val('none').text(node._('msb.dataType.none')));
        type.val(node.dataType || 'string');

        node._schemaEditor = RED.editor.createEditor({
            id: 'node-input-schema-editor',
            mode: 'ace/mode/json',
            value: node.schema || '{\n  "type": "object",\n  "properties": {\n    "value": { "type": "number", "format": "double" }\n  },\n  "required": ["value"]\n}'
        });
        function checkSchema() {
            var problem = schemaProblem(type.val(), node._schemaEditor.getValue());
            $('#node-input-schema-problem').text(problem ? node._('msb.validation.schema.' + problem) : '');
        }
        node._schemaEditor.getSession().on('change', checkSchema);
        type.on('change', function () {
            var t = type.val();
            $('.node-input-msb-schema-row').toggle(t === 'complex');
            $('.node-input-msb-array-row').toggle(t !== 'none');
            checkSchema();
        });
        return type;
    }

    // The schema text is kept only when the node declares a complex type (and, for msb-function-in, is a function).
    function schemaToSave(node, declares) {
        return declares && $('#node-input-dataType').val() === 'complex' ? node._schemaEditor.getValue() : '';
    }

    function closeSchemaEditor(node) {
        node._schemaEditor.destroy();
        delete node._schemaEditor;
    }

    function resizeSchemaEditor(node) {
        if (node._schemaEditor) { node._schemaEditor.resize(); }
    }

    window.BusbarMsbEditor = {
        schemaProblem: schemaProblem,
        prepareDataFormat: prepareDataFormat,
        schemaToSave: schemaToSave,
        closeSchemaEditor: closeSchemaEditor,
        resizeSchemaEditor: resizeSchemaEditor
    };
})();
