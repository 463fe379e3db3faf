#!/usr/bin/env python3
"""Functions longer than N lines in the given directories, by brace counting (strings and
comments stripped; a file's lines from its first `#[cfg(test)]` on are tests, not counted)."""
import re,sys,os
N=int(sys.argv[1]) if len(sys.argv)>1 else 100
roots=sys.argv[2:] or ['src']
fnre=re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
for root in roots:
  for dp,dn,fns in os.walk(root):
    for f in fns:
      if not f.endswith('.rs'): continue
      p=os.path.join(dp,f); lines=open(p).read().split('\n')
      i=0; intest=False
      while i<len(lines):
        l=lines[i]
        if l.strip().startswith('#[cfg(test)]'):
          break
        m=fnre.match(l)
        if m:
          depth=0; started=False; j=i
          while j<len(lines):
            s=re.sub(r'"([^"\\]|\\.)*"','""',lines[j]); s=re.sub(r"'([^'\\]|\\.)'","''",s); s=s.split('//')[0]
            for c in s:
              if c=='{': depth+=1; started=True
              elif c=='}': depth-=1
            if started and depth<=0: break
            if not started and s.rstrip().endswith(';'): break
            j+=1
          n=j-i+1
          if n>N: print(f'{n:5d} {p}:{i+1} {m.group(6)}')
          i=j+1; continue
        i+=1
