// PromQL editor: CodeMirror 6 with @prometheus-io/codemirror-promql (highlighting, linting,
// and completion of functions, metric names, label names and values from the querier).
import { EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, placeholder, drawSelection, highlightSpecialChars } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, insertNewlineAndIndent } from '@codemirror/commands';
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, completionStatus } from '@codemirror/autocomplete';
import { HighlightStyle, syntaxHighlighting, bracketMatching, indentOnInput } from '@codemirror/language';
import { lintKeymap } from '@codemirror/lint';
import { tags } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { apiBase } from './api.js';

const highlight = HighlightStyle.define([
  { tag: tags.number, color: '#09885a' },
  { tag: tags.string, color: '#a31515' },
  { tag: tags.keyword, color: '#008080', fontWeight: 'bold' },
  { tag: tags.function(tags.variableName), color: '#008080', fontWeight: 'bold' },
  { tag: tags.labelName, color: '#800000' },
  { tag: tags.operator, color: '#af00db' },
  { tag: tags.modifier, color: '#af00db', fontWeight: 'bold' },
  { tag: tags.paren, color: '#555' },
  { tag: tags.squareBracket, color: '#555' },
  { tag: tags.brace, color: '#555' },
  { tag: tags.invalid, color: 'red' },
  { tag: tags.comment, color: '#888', fontStyle: 'italic' },
]);

const theme = EditorView.theme({
  '&': { fontSize: '14px', border: '1px solid #ccc', borderRadius: '4px', background: '#fff' },
  '&.cm-focused': { outline: 'none', borderColor: '#66afe9', boxShadow: '0 0 0 2px rgba(102,175,233,.35)' },
  '.cm-content': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', padding: '6px 0' },
  '.cm-scroller': { overflow: 'auto', maxHeight: '12em' },
  '.cm-tooltip.cm-tooltip-autocomplete > ul': { fontFamily: 'ui-monospace, monospace', maxHeight: '16em' },
  '.cm-completionDetail': { color: '#888', marginLeft: '0.5em', fontStyle: 'normal' },
});

let promql;
function promqlExtension() {
  if (!promql) {
    promql = new PromQLExtension().setComplete({
      remote: {
        url: apiBase || window.location.origin,
        httpMethod: 'GET',
        // /api/v1/metadata may not exist (404): completion then simply lacks metric help.
        httpErrorHandler: () => {},
      },
      maxMetricsMetadata: 10000,
    });
  }
  return promql.asExtension();
}

// createEditor mounts an editor in parent; onExecute runs on Enter (Shift+Enter: newline).
export function createEditor(parent, { doc = '', onExecute, onChange }) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        autocompletion({ activateOnTyping: true }),
        syntaxHighlighting(highlight),
        placeholder('Expression (press Shift+Enter for newlines)'),
        EditorView.lineWrapping,
        theme,
        promqlExtension(),
        Prec.highest(
          keymap.of([
            {
              key: 'Enter',
              run: (v) => {
                // With the completion list open, Enter picks the completion (as in Prometheus).
                if (completionStatus(v.state) === 'active') return false;
                onExecute?.(v.state.doc.toString());
                return true;
              },
            },
            { key: 'Shift-Enter', run: insertNewlineAndIndent },
          ]),
        ),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap]),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) onChange?.(u.state.doc.toString());
        }),
        EditorView.contentAttributes.of({ 'aria-label': 'PromQL expression', 'data-testid': 'promql-input' }),
      ],
    }),
  });
  return view;
}
