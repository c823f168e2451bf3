// The bench bundle loads schema.sql as text (esbuild's text loader), to set up its own D1.
declare module '*.sql' {
  const text: string;
  export default text;
}
