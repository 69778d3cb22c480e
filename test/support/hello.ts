// The ApiGear quick-start module (io.world / Hello) used across the ApiGear tests, with a swappable module name.
export function helloYaml(moduleName = 'io.world'): string {
  return `schema: apigear.module/1.0
name: ${moduleName}
version: "1.0.0"

interfaces:
  - name: Hello
    properties:
      - { name: last, type: Message }
    operations:
      - name: say
        params:
          - { name: msg, type: Message }
          - { name: when, type: When }
        return:
          type: int
    signals:
      - name: justSaid
        params:
          - { name: msg, type: Message }
enums:
  - name: When
    members:
      - { name: Now, value: 0 }
      - { name: Soon, value: 1 }
      - { name: Never, value: 2 }
structs:
  - name: Message
    fields:
      - { name: content, type: string }
`;
}
