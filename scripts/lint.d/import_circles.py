#!/usr/bin/env python3
"""The module import graph of a crate's src/ (one node per file module), printing every
circle (a strongly connected component of more than one module) with its edges, then
"<n> cycles". An edge A -> B when A's `use` lines or paths name B or an item of B
(`crate::`, `super::`, `self::` paths; comments and test modules ignored). `mod x;` is not an
edge, and neither is a module naming its own ancestor (`super::Error`): a module is part of
its parent, whose items are the shared vocabulary of its children. What is refused is
siblings, or modules of different subtrees, that import each other round a circle.
src/bin is left out."""
import os,re,sys
root=sys.argv[1] if len(sys.argv)>1 else 'src'
mods={}
for dp,dn,fns in os.walk(root):
    for f in fns:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3].split(os.sep)
        if rel[-1]=='mod': rel=rel[:-1]
        if rel==['lib'] : rel=[]
        if rel and rel[0]=='bin': continue
        mods[tuple(rel)]=p
def resolve(cur,path):
    parts=path.split('::')
    if parts[0]=='crate': base=[]; parts=parts[1:]
    elif parts[0]=='super':
        base=list(cur)
        while parts and parts[0]=='super': base=base[:-1]; parts=parts[1:]
    elif parts[0]=='self': base=list(cur); parts=parts[1:]
    else: return None
    best=None
    for i in range(len(parts)+1):
        t=tuple(base+parts[:i])
        if t in mods: best=t
    return best
edges={m:set() for m in mods}
children={m:{c[-1] for c in mods if len(c)==len(m)+1 and c[:len(m)]==m} for m in mods}
pat=re.compile(r'\b((?:crate|super|self)(?:::\w+)+)')
for m,p in mods.items():
    src=open(p).read()
    src=src.split('#[cfg(test)]')[0]
    src=re.sub(r'//[^\n]*','',src)
    # expand use groups: use a::{b, c::{d}} -> a::b, a::c::d
    for um in re.finditer(r'\buse\s+([^;]+);',src):
        u=re.sub(r'\s+','',um.group(1))
        def expand(s):
            if '{' not in s: return [s]
            i=s.index('{'); pre=s[:i]; body=s[i+1:s.rindex('}')]
            out=[];depth=0;cur=''
            for c in body:
                if c=='{': depth+=1
                if c=='}': depth-=1
                if c==',' and depth==0: out.append(cur); cur=''
                else: cur+=c
            if cur: out.append(cur)
            r=[]
            for o in out:
                for e in expand(o): r.append(pre+e if e!='self' else pre.rstrip(':'))
            return r
        try: ex=expand(u)
        except ValueError: continue
        for e in ex:
            e=e.split(' as ')[0]
            if not re.match(r'(crate|super|self)::',e) and e.split('::')[0] in children[m]:
                e='self::'+e
            t=resolve(m,e) if re.match(r'(crate|super|self)::',e) else None
            if t is not None and t!=m and t!=m[:len(t)]: edges[m].add(t)
    body=re.sub(r'\buse\s+[^;]+;','',src)
    for pm in pat.finditer(body):
        t=resolve(m,pm.group(1))
        if t is not None and t!=m and t!=m[:len(t)]: edges[m].add(t)
    if children[m]:
        for pm in re.finditer(r'(?<![\w:])((?:'+'|'.join(map(re.escape,children[m]))+r')(?:::\w+)+)',body):
            t=resolve(m,'self::'+pm.group(1))
            if t is not None and t!=m and t!=m[:len(t)]: edges[m].add(t)
# ignore child->ancestor edges only where the ancestor does not import that child back (normal)
idx={};low={};st=[];on=set();res=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: res.append(comp)
for v in mods:
    if v not in idx: sc(v)
for comp in res:
    names=['::'.join(x) or 'crate' for x in comp]
    print('CYCLE:',', '.join(sorted(names)))
    for a in comp:
        for b in edges[a]:
            if b in comp: print('   ','::'.join(a),'->','::'.join(b))
print(len(res),'cycles')
